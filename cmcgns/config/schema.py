"""Typed, validated configuration for every command."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic


class Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticData(Strict):
    studies: int = pydantic.Field(240, ge=16, description="synthetic MIMIC-CXR studies for the built-in default")
    seed: int = 0
    raw_image_size: int = pydantic.Field(128, ge=32)


class PretrainData(Strict):
    manifest: Path | None = pydantic.Field(None, description="preprocessed mimic-cxr folder; unset = synthetic default")
    synthetic: SyntheticData = SyntheticData()
    image_size: int = pydantic.Field(64, ge=32)
    max_tokens: int = pydantic.Field(64, ge=8)
    max_sentences: int = pydantic.Field(8, ge=1)
    num_workers: int = pydantic.Field(0, ge=0)
    train_split: str = "train"
    eval_split: str = pydantic.Field("validate", description="split(s) for retrieval/linear-probe evaluation; '+' pools several, e.g. validate+test")


class ImageModel(Strict):
    name: str = "vit_tiny_patch16_224"
    pretrained_path: Path | None = None


class TextModel(Strict):
    path: str | None = pydantic.Field(None, description="local transformers folder; unset = offline all-MiniLM-L6-v2")
    tokenizer_path: str | None = None
    pooling: Literal["mean", "cls"] = "mean"
    freeze_layers: int = pydantic.Field(0, ge=0)


class ModelConfig(Strict):
    image: ImageModel = ImageModel()
    text: TextModel = TextModel()
    embed_dim: int = pydantic.Field(128, ge=8)
    temperature: float = pydantic.Field(0.07, gt=0)
    local_temperature: float = pydantic.Field(0.1, gt=0)


class Component(Strict):
    name: str
    options: dict[str, Any] = {}


class LossWeights(Strict):
    global_: float = pydantic.Field(1.0, ge=0, alias="global")
    token: float = pydantic.Field(0.5, ge=0)
    sentence: float = pydantic.Field(0.5, ge=0)
    reconstruction: float = pydantic.Field(1.0, ge=0)

    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class Stage(Strict):
    name: str
    steps: int = pydantic.Field(ge=1)
    reconstruction: bool = False


class TrainConfig(Strict):
    batch_size: int = pydantic.Field(16, ge=2, description="per process")
    grad_accum: int = pydantic.Field(1, ge=1)
    lr: float = pydantic.Field(2e-4, gt=0)
    weight_decay: float = pydantic.Field(0.05, ge=0)
    warmup_steps: int = pydantic.Field(5, ge=0)
    grad_clip: float = pydantic.Field(1.0, ge=0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    log_every: int = pydantic.Field(5, ge=1)
    checkpoint_every: int = pydantic.Field(50, ge=1)
    keep_checkpoints: int = pydantic.Field(2, ge=1)
    evaluate: bool = True
    tensorboard: bool = True


class PretrainConfig(Strict):
    run_dir: Path = Path("runs/pretrain")
    data: PretrainData = PretrainData()
    model: ModelConfig = ModelConfig()
    sampler: Component = Component(name="cm-cgns")
    head: Component = Component(name="cm-mir")
    loss: LossWeights = LossWeights()
    train: TrainConfig = TrainConfig()
    stages: list[Stage] = [Stage(name="align", steps=40), Stage(name="align+mir", steps=20, reconstruction=True)]

    @pydantic.model_validator(mode="after")
    def _check(self) -> "PretrainConfig":
        if not self.stages:
            raise ValueError("stages: at least one stage is required")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: names must be unique, got {names}")
        if any(s.reconstruction for s in self.stages) and self.head.name == "none":
            raise ValueError("stages: a stage asks for reconstruction but head.name is 'none'")
        return self

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> Stage:
        boundary = 0
        for stage in self.stages:
            boundary += stage.steps
            if step < boundary:
                return stage
        return self.stages[-1]
