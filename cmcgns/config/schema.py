"""Typed, validated configuration for every command."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic


class Strict(pydantic.BaseModel):
    # unknown keys are errors; inf/nan are never valid settings (lr=inf would train to NaN)
    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


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
    num_workers: int | Literal["auto"] = pydantic.Field(
        "auto", description="loader processes; auto = CPUs per local rank (max 8) on CUDA, 0 on a CPU"
    )
    pairing: Literal["paired", "shuffled"] = pydantic.Field(
        "paired", description="shuffled: each image trains with another study's report (negative control)"
    )
    train_split: str = "train"
    eval_split: str = pydantic.Field(
        "val",
        description="split(s) for retrieval/linear-probe evaluation (train/val/test; "
        "MIMIC's 'validate' is read as val); '+' pools several, e.g. val+test",
    )


class ImageModel(Strict):
    name: str = "vit_tiny_patch16_224"
    pretrained_path: Path | None = None
    pooling: Literal["auto", "cls", "mean", "attention"] = pydantic.Field(
        "auto", description="global image feature: auto = CLS token for ViTs, attention pooling for CNNs (official)"
    )


class TextModel(Strict):
    path: str | None = pydantic.Field(None, description="local transformers folder; unset = offline all-MiniLM-L6-v2")
    tokenizer_path: str | None = None
    pooling: Literal["attention", "mean", "cls"] = pydantic.Field(
        "attention",
        description="global report feature: attention pooling over sentences (official), or mean/CLS of tokens",
    )
    freeze_layers: int = pydantic.Field(0, ge=0)


class ModelConfig(Strict):
    image: ImageModel = ImageModel()
    text: TextModel = TextModel()
    embed_dim: int = pydantic.Field(
        128, ge=8, description="width of global, local and cross-modal features (official 768)"
    )
    pool_heads: int = pydantic.Field(8, ge=1, description="heads of the attention-pooling layers")
    cross_attention: Literal["sigmoid", "softmax", "cosine"] = pydantic.Field(
        "sigmoid",
        description="cross-modal attention weights: sigmoid(q.k/sqrt(d)) (official), softmax(q.k/sqrt(d)), or "
        "cosine = softmax(cos(q, k) / attention_temperature) (sharp from the first step)",
    )
    attention_temperature: float = pydantic.Field(
        0.1, gt=0, description="cosine cross-attention: temperature of the query-key cosine"
    )
    normalize_patches: bool = pydantic.Field(
        True,
        description="L2-normalise the projected local image features before the cross-attention, SimSiam and "
        "CM-MIR (official); false = attend over the raw projections",
    )


class Component(Strict):
    name: str
    options: dict[str, Any] = {}


class SamplerComponent(Component):
    name: str = "cm-cgns"


class HeadComponent(Component):
    name: str = pydantic.Field("cm-mir", description="reconstruction head plugin, or none")


class LossWeights(Strict):
    global_: float = pydantic.Field(1.0, ge=0, alias="global")
    local_image: float = pydantic.Field(1.0, ge=0)
    local_report: float = pydantic.Field(1.0, ge=0)
    reconstruction: float = pydantic.Field(
        1.0, ge=0, description="multiplies the head's loss (cm-mir carries its own x10)"
    )

    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class ObjectiveConfig(Strict):
    weights: LossWeights = LossWeights()
    sampler_on: Literal["local_report", "global"] = pydantic.Field(
        "local_report",
        description="where the negative sampler acts (paper: local_report); the other level uses plain InfoNCE",
    )
    temperature: float = pydantic.Field(0.1, gt=0, description="initial global temperature (official 0.1)")
    learnable_temperature: bool = True
    max_logit_scale: float = pydantic.Field(100.0, gt=1, description="clamp of the learnable global logit scale")
    local_report_temperature: float = pydantic.Field(
        1.0, gt=0, description="temperature of the local report loss (official 1.0)"
    )
    local_image: Literal["simsiam", "mgca", "none"] = pydantic.Field(
        "simsiam",
        description="local image loss: SimSiam patch vs f^{R->I} (paper), MGCA-style within-image InfoNCE, or none",
    )
    simsiam_attended: Literal["raw", "normalized"] = pydantic.Field(
        "raw",
        description="f^{R->I} as the SimSiam predictor's input: raw (official) or L2-normalised",
    )
    local_image_temperature: float = pydantic.Field(0.1, gt=0, description="temperature of the mgca local image loss")
    predictor_hidden: int | None = pydantic.Field(
        None, ge=1, description="SimSiam predictor hidden width; unset = embed_dim // 2 (768->384->768)"
    )


class Stage(Strict):
    name: str
    steps: int | None = pydantic.Field(None, ge=1)
    epochs: float | None = pydantic.Field(
        None, gt=0, description="alternative to steps: passes over the training pairs"
    )
    reconstruction: bool = False
    reset_optimizer: bool = pydantic.Field(
        True, description="fresh optimiser and warm-up at the start of this stage (official)"
    )

    @pydantic.model_validator(mode="after")
    def _length(self) -> Stage:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"stage {self.name!r}: give exactly one of steps or epochs")
        return self


class TrainConfig(Strict):
    batch_size: int = pydantic.Field(16, ge=2, description="per process")
    grad_accum: int = pydantic.Field(1, ge=1)
    optimizer: Literal["adamw", "adam"] = pydantic.Field(
        "adamw", description="adam = Adam with L2 weight decay (official)"
    )
    lr: float = pydantic.Field(2e-4, gt=0)
    weight_decay: float = pydantic.Field(0.05, ge=0)
    warmup_steps: int = pydantic.Field(5, ge=0)
    warmup_epochs: float | None = pydantic.Field(
        None, ge=0, description="overrides warmup_steps when set (official: 1)"
    )
    warmup_start: float = pydantic.Field(
        0.0, ge=0, le=1, description="lr factor at the first warm-up step (official 1e-7/1e-5 = 0.01)"
    )
    min_lr_ratio: float = pydantic.Field(0.01, ge=0, le=1, description="cosine floor as a fraction of lr (official 0)")
    grad_clip: float = pydantic.Field(1.0, ge=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = pydantic.Field(
        "auto", description="auto = bf16 autocast on CUDA devices that support it, fp32 on CPUs"
    )
    compile: bool = pydantic.Field(False, description="torch.compile the image and text encoders")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: pydantic.PositiveInt | Literal["auto"] = pydantic.Field(
        "auto",
        description="torch intra-op threads per process; auto = the CPUs available to this process, divided among "
        "the local ranks, less the loader workers (at least 1); the value used is in summary.json",
    )
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
    sampler: SamplerComponent = SamplerComponent()
    head: HeadComponent = HeadComponent()
    objective: ObjectiveConfig = ObjectiveConfig()
    train: TrainConfig = TrainConfig()
    stages: list[Stage] = [Stage(name="align", steps=40), Stage(name="align+mir", steps=20, reconstruction=True)]

    @pydantic.model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        if not self.stages:
            raise ValueError("stages: at least one stage is required")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: names must be unique, got {names}")
        if any(s.reconstruction for s in self.stages) and self.head.name == "none":
            raise ValueError("stages: a stage asks for reconstruction but head.name is 'none'")
        return self

    def stage_steps(self, steps_per_epoch: int) -> list[int]:
        """Length of each stage in optimiser steps (epochs converted with `steps_per_epoch`)."""
        return [
            s.steps if s.steps is not None else max(1, round((s.epochs or 0) * steps_per_epoch)) for s in self.stages
        ]

    def warmup_steps(self, steps_per_epoch: int) -> int:
        if self.train.warmup_epochs is not None:
            return int(round(self.train.warmup_epochs * steps_per_epoch))
        return self.train.warmup_steps
