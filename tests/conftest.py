from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def synthetic_mimic(tmp_path_factory) -> Path:
    from cmcgns.data.bootstrap import ensure_synthetic

    return ensure_synthetic("mimic-cxr", tmp_path_factory.mktemp("mimic"), 64, 0, 64, 32)


@pytest.fixture(scope="session")
def tiny_text_model(synthetic_mimic, tmp_path_factory) -> Path:
    from cmcgns.models.tiny_text import report_corpus, train_text_model

    return train_text_model(
        report_corpus(synthetic_mimic), tmp_path_factory.mktemp("text"), vocab_size=400, hidden_size=32, layers=1
    )


@pytest.fixture()
def tiny_pretrain_config(synthetic_mimic, tiny_text_model, tmp_path):
    from cmcgns.config.schema import PretrainConfig

    def make(**overrides):
        data = {
            "run_dir": str(tmp_path / "run"),
            "data": {"manifest": str(synthetic_mimic), "image_size": 32, "max_tokens": 32, "max_sentences": 4},
            "model": {
                "image": {"name": "vit_tiny_patch16_224"},
                "text": {"path": str(tiny_text_model)},
                "embed_dim": 32,
            },
            "sampler": {
                "name": "cm-cgns",
                "options": {
                    "num_clusters": 3,
                    "init_threshold": 1.0,
                    "ema_rate": 0.05,
                    "refit_every": 2,
                    "reseed_idle_after": 1,
                },
            },
            "head": {
                "name": "cm-mir",
                "options": {"num_heads": 2, "decoder_layers": 1, "ffn_dim": 64, "upsampler_channels": 32},
            },
            "train": {
                "batch_size": 8,
                "log_every": 1,
                "checkpoint_every": 2,
                "tensorboard": False,
                "evaluate": False,
                "warmup_steps": 1,
            },
            "stages": [{"name": "align", "steps": 3}, {"name": "mir", "steps": 2, "reconstruction": True}],
        }
        for key, value in overrides.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return PretrainConfig.model_validate(data)

    return make
