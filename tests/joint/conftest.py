from __future__ import annotations

import pytest

from cmcgns.training.pretrain import pretrain


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, synthetic_mimic, tiny_text_model):
    from cmcgns.config.schema import PretrainConfig

    config = PretrainConfig.model_validate(
        {
            "run_dir": str(tmp_path_factory.mktemp("run") / "run"),
            "data": {"manifest": str(synthetic_mimic), "image_size": 32, "max_tokens": 32, "max_sentences": 4},
            "model": {
                "image": {"name": "vit_tiny_patch16_224"},
                "text": {"path": str(tiny_text_model)},
                "embed_dim": 32,
            },
            "sampler": {"name": "in-batch"},
            "head": {"name": "none"},
            "train": {
                "batch_size": 8,
                "tensorboard": False,
                "evaluate": False,
                "checkpoint_every": 3,
                "warmup_steps": 1,
            },
            "stages": [{"name": "align", "steps": 3}],
        }
    )
    pretrain(config, progress=False)
    return config
