# Two entry points on a fresh machine (both create/reuse the venv, see scripts/venv.sh):
#   make demo   - synthetic data -> preprocess -> CM-CGNS pretrain -> downstream benchmark
#   make test   - the test suite (includes the mm detection/segmentation paths)
.PHONY: demo test test-fast check format venv

VENV := $(shell bash scripts/venv.sh)
DEMO_DIR ?= runs/demo

venv:
	@echo $(VENV)

demo:
	$(VENV)/bin/cmcgns pretrain --config demo --set run_dir=$(DEMO_DIR)/pretrain --overwrite
	$(VENV)/bin/cmcgns benchmark --tasks rsna-cls,covidx-cls,rsna-det,siim-seg --fractions 0.1,1.0 --seeds 0 \
	  --backbone $(DEMO_DIR)/pretrain/export --data-root $(DEMO_DIR)/data --out $(DEMO_DIR)/benchmark --synthetic --synthetic-studies 400 --protocol fast --compare-random-init
	$(VENV)/bin/cmcgns benchmark --tasks chexpert-zeroshot,rsna-zeroshot,mimic-retrieval --set mimic-retrieval.eval_set=split \
	  --backbone $(DEMO_DIR)/pretrain/export --data-root $(DEMO_DIR)/data --out $(DEMO_DIR)/zero-shot --synthetic --synthetic-studies 400 --compare-random-init

test: check
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# apply the formatter and the safe lint fixes
format:
	$(VENV)/bin/ruff format --quiet cmcgns tests benchmarks plugins
	$(VENV)/bin/ruff check --fix --quiet cmcgns tests benchmarks plugins

# format, lint (ruff) and the contract modules' types (mypy): configured in pyproject.toml
check:
	$(VENV)/bin/ruff format --check --quiet cmcgns tests benchmarks plugins
	$(VENV)/bin/ruff check --quiet cmcgns tests benchmarks plugins
	$(VENV)/bin/mypy

# the inner loop: everything but multi-process runs, the OpenMMLab paths and real offline material
test-fast:
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not slow and not mm and not real_data" $(PYTEST_ARGS)
