"""`--set a.b=c` overrides applied to a nested mapping before validation."""

from __future__ import annotations

from typing import Any

import re

import yaml

from cmcgns.errors import ConfigError

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"override {text!r} has an empty key segment")
    from cmcgns.config.loading import load_yaml  # the config files' loader: no key twice, bounded aliases

    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
        raise ConfigError(f"override {text!r}: value is not valid YAML ({reason})") from None
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    return parts, value


def _index(node: list, part: str, text: str) -> int:
    if not part.lstrip("-").isdigit():
        raise ConfigError(f"override {text!r}: {part!r} indexes a list; use a number (0 is the first entry)")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {text!r}: index {index} is out of range (the list has {len(node)} entries)")
    return index


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=c` sets a nested value; a number indexes a list (`stages.0.steps=5`)."""
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                child = node[_index(node, part, text)]
            else:
                child = node.get(part)
                if child is None:
                    if parts[depth + 1].isdigit():
                        raise ConfigError(
                            f"override {text!r}: {'.'.join(parts[: depth + 1])} is not a list here; "
                            f"give the whole list, e.g. --set '{part}=[...]'"
                        )
                    child = node[part] = {}
            if not isinstance(child, (dict, list)):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = child
        if isinstance(node, list):
            node[_index(node, parts[-1], text)] = value
        else:
            node[parts[-1]] = value
    return data
