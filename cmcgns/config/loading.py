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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


MAX_EXPANDED_NODES = 100_000  # a config is a few hundred nodes; nested aliases can multiply without bound


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes of the document with every alias expanded (what validating or dumping it walks)."""
    key = id(node)
    if key not in memo:
        memo[key] = 1  # a recursive alias counts once here; the constructor refuses it
        if isinstance(node, yaml.SequenceNode):
            memo[key] += sum(_expanded_size(child, memo) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
        memo[key] = min(memo[key], MAX_EXPANDED_NODES + 1)
    return memo[key]


def load_yaml(text: str) -> Any:
    """YAML (safe loader, no key given twice); a document whose aliases expand past
    MAX_EXPANDED_NODES nodes (a "billion laughs" file) is refused before it is built."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(
                f"its aliases expand to more than {MAX_EXPANDED_NODES:,} nodes; write the values out instead"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _section_fields(model: type[pydantic.BaseModel] | None, loc: tuple) -> list[str]:
    """The field names of the (nested) model section at `loc`, or [] when it is not a model."""
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, pydantic.BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def format_validation_error(
    source: str, exc: pydantic.ValidationError, model: type[pydantic.BaseModel] | None = None
) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            valid = _section_fields(model, tuple(err["loc"][:-1]))
            if valid:
                message += f"; valid keys here: {', '.join(valid)}"
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def _component_fields(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """Top-level fields that name a plugin component ({name, options}), with their default name."""
    from cmcgns.config.schema import Component

    out = {}
    for field, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, Component):
            out[field] = info.annotation.model_fields["name"].get_default()
    return out


def _restart_switched_components(model: type[pydantic.BaseModel], data: dict[str, Any], overrides: list[str]) -> None:
    """`--set sampler.name=in-batch` (or `--sampler`, `--head`) on a config written for another
    component starts from the new component's defaults: the file's options were written for the
    old one. Options given on the command line still apply (they are applied after this)."""
    from cmcgns.config.overrides import parse_override

    components = _component_fields(model)
    final_names: dict[str, Any] = {}  # the last `--set FIELD.name=` of each component wins
    for text in overrides:
        parts, value = parse_override(text)
        if len(parts) == 2 and parts[0] in components and parts[1] == "name":
            final_names[parts[0]] = value
    for field, name in final_names.items():
        section = data.get(field)
        if isinstance(section, dict) and name != section.get("name", components[field]):
            section["options"] = {}


def load_config(model: type[ModelT], path: str | Path | None = None, overrides: list[str] | None = None) -> ModelT:
    if path:
        from cmcgns.config.packaged import resolve_config

        path = resolve_config(path)
    data: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for text in overrides or []:  # `stages.0.steps=5` with no stages in the file indexes the default list
        top, _, rest = text.partition("=")[0].partition(".")
        if rest[:1].isdigit() and top not in data and top in model.model_fields:
            default = model.model_fields[top].get_default(call_default_factory=True)
            data[top] = pydantic.TypeAdapter(Any).dump_python(default, mode="json")
    _restart_switched_components(model, data, list(overrides or []))
    data = apply_overrides(data, list(overrides or []))
    source = str(path) if path else "<defaults>"
    if overrides:
        source += " + --set " + " ".join(overrides)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, model)) from None


def read_yaml_file(path: Path, what: str) -> Any:
    """Any YAML document, with one error format: `PATH: cannot read WHAT (reason)`."""
    try:
        return load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from None


def load_yaml_model(path: Path, model: type[ModelT], what: str) -> ModelT:
    """A YAML file validated into `model`; every error listed with its field path (format_validation_error)."""
    data = read_yaml_file(path, what)
    try:
        return model.model_validate({} if data is None else data)
    except pydantic.ValidationError as exc:
        raise ConfigError(format_validation_error(f"{path} ({what})", exc, model)) from None


def dump_config(config: pydantic.BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_resolved_config(config: pydantic.BaseModel, run_dir: str | Path) -> Path:
    target = Path(run_dir) / RESOLVED_CONFIG_NAME
    write_text(target, dump_config(config))
    return target
