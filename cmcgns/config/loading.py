"""Load YAML config files into validated pydantic models; save the resolved copy per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from cmcgns.config.overrides import apply_overrides
from cmcgns.errors import ConfigError
from cmcgns.io.atomic import write_text

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

RESOLVED_CONFIG_NAME = "config.resolved.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def format_validation_error(source: str, exc: pydantic.ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  - {where}: {err['msg']}")
    return "\n".join(lines)


def load_config(model: type[ModelT], path: str | Path | None = None, overrides: list[str] | None = None) -> ModelT:
    if path:
        from cmcgns.config.packaged import resolve_config

        path = resolve_config(path)
    data: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    data = apply_overrides(data, list(overrides or []))
    source = str(path) if path else "<defaults>"
    if overrides:
        source += " + --set " + " ".join(overrides)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def read_yaml_file(path: Path, what: str) -> Any:
    """Any YAML document, with one error format: `PATH: cannot read WHAT (reason)`."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from None


def load_yaml_model(path: Path, model: type[ModelT], what: str) -> ModelT:
    """A YAML file validated into `model`; every error listed with its field path (format_validation_error)."""
    data = read_yaml_file(path, what)
    try:
        return model.model_validate({} if data is None else data)
    except pydantic.ValidationError as exc:
        raise ConfigError(format_validation_error(f"{path} ({what})", exc)) from None


def dump_config(config: pydantic.BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_resolved_config(config: pydantic.BaseModel, run_dir: str | Path) -> Path:
    target = Path(run_dir) / RESOLVED_CONFIG_NAME
    write_text(target, dump_config(config))
    return target
