"""A pretraining config made complete and checked before anything runs: plugin options validated
and filled in, the checks that span sections, and the hash that identifies the config."""

from __future__ import annotations

import hashlib

from cmcgns.config.loading import dump_config
from cmcgns.config.schema import PretrainConfig
from cmcgns.errors import ConfigError
from cmcgns.plugins.manager import get_registry


def config_hash(config: PretrainConfig) -> str:
    return hashlib.sha256(dump_config(config).encode()).hexdigest()[:16]


def _divisors(n: int, up_to: int = 16) -> str:
    return ", ".join(str(d) for d in range(1, min(n, up_to) + 1) if n % d == 0)


def check_heads(field: str, heads: int, width_field: str, width: int) -> None:
    if width % heads:
        raise ConfigError(f"{field}={heads} does not divide {width_field}={width}; use one of {_divisors(width)}")


def resolve_components(config: PretrainConfig) -> PretrainConfig:
    """Validate sampler/head options through their plugins and store the completed options; fails
    (one line naming the fields) on combinations no single section can see, e.g. attention heads
    that do not divide the feature width, so `--print-config` catches them before data is generated."""
    registry = get_registry()
    sampler = registry.get("negative_sampler", config.sampler.name)
    config = config.model_copy(deep=True)
    config.sampler.options = sampler.validate_options(config.sampler.options).model_dump(mode="json")
    check_heads("model.pool_heads", config.model.pool_heads, "model.embed_dim", config.model.embed_dim)
    if config.head.name != "none":
        head = registry.get("reconstruction_head", config.head.name)
        config.head.options = head.validate_options(config.head.options).model_dump(mode="json")
        heads = config.head.options.get("num_heads")
        if isinstance(heads, int) and "hidden_dim" not in config.head.options:  # heads over the shared feature width
            check_heads("head.options.num_heads", heads, "model.embed_dim", config.model.embed_dim)
    return config
