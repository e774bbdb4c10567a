"""Pretraining configs shipped inside the package (`cmcgns pretrain -c NAME`), and the
``"required: ..."`` placeholders they use for what only the user can give (data, weights)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from cmcgns.errors import ConfigError

REQUIRED_PREFIX = "required:"


def packaged_configs() -> dict[str, Path]:
    folder = resources.files("cmcgns") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def describe_packaged() -> list[tuple[str, str]]:
    """(name, first comment line) of each packaged config."""
    out = []
    for name, path in sorted(packaged_configs().items()):
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")), "# ")
        out.append((name, first.lstrip("# ").strip()))
    return out


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file path, or the name of a packaged config (with or without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = packaged_configs()
    if path.stem in packaged and (path.suffix in ("", ".yaml")) and len(path.parts) == 1:
        return packaged[path.stem]
    raise ConfigError(
        f"{name_or_path}: no such config file and no packaged config of that name "
        f"(packaged: {', '.join(sorted(packaged))}; see cmcgns pretrain --list-configs)"
    )


def is_required_placeholder(value: Any) -> bool:
    return value is not None and str(value).startswith(REQUIRED_PREFIX)


def check_required(config: Any, fields: list[str]) -> None:
    """Fail with one line per unset required field (dotted names, e.g. model.text.path)."""
    missing = []
    for dotted in fields:
        node = config
        for part in dotted.split("."):
            node = getattr(node, part)
        if is_required_placeholder(node):
            what = str(node)[len(REQUIRED_PREFIX) :].strip()
            missing.append(f"{dotted} is not set: this config needs {what}; give it with --set {dotted}=...")
    if missing:
        raise ConfigError("\n".join(missing))
