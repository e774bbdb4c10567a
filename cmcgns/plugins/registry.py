"""Component registry filled by plugin hooks."""

from __future__ import annotations

import dataclasses
from typing import Any
from collections.abc import Callable

import pydantic

from cmcgns.errors import CmcgnsError, ConfigError, PluginError
from cmcgns.plugins.options import NoOptions

# names a plugin cannot take because a command already gives them a meaning (`cmcgns preprocess verify DIR`)
RESERVED_NAMES: dict[str, set[str]] = {"dataset": {"verify"}}

KINDS: dict[str, str] = {
    "negative_sampler": "register_negative_samplers",
    "reconstruction_head": "register_reconstruction_heads",
    "downstream_task": "register_downstream_tasks",
    "dataset": "register_datasets",
}


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "").replace("pathlib.", "")


@dataclasses.dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    options: type[pydantic.BaseModel]
    description: str
    plugin: str
    version: str
    source: str

    def validate_options(self, raw: dict[str, Any] | None) -> pydantic.BaseModel:
        try:
            return self.options.model_validate(raw or {})
        except pydantic.ValidationError as exc:
            details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"options for {self.kind} {self.name!r} (plugin {self.plugin}): {details}") from None

    def describe_options(self) -> dict[str, dict[str, Any]]:
        """Each option's type, default (JSON-safe) and description, for `cmcgns plugins --json`."""
        out: dict[str, dict[str, Any]] = {}
        for name, field in self.options.model_fields.items():
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            out[name] = {
                "type": _type_name(field.annotation),
                "default": pydantic.TypeAdapter(Any).dump_python(default, mode="json"),
                "required": field.is_required(),
                "description": field.description or "",
            }
        return out

    def build(self, raw_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        options = self.validate_options(raw_options)
        if self.source == "builtin":
            return self.factory(options, **kwargs)
        try:  # a third-party factory's failure names its plugin, not a traceback into ours
            built = self.factory(options, **kwargs)
        except CmcgnsError:
            raise
        except (Exception, SystemExit) as exc:
            raise PluginError(
                f"{self.kind} {self.name!r} (plugin {self.plugin}) failed to build: {type(exc).__name__}: {exc}"
            ) from exc
        if built is None:
            raise PluginError(f"{self.kind} {self.name!r} (plugin {self.plugin}): its factory returned None")
        return built


class Registry:
    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self.plugins: list[dict[str, str]] = []
        self.failures: list[Any] = []  # manager.PluginFailure: external plugins left out

    def snapshot(self) -> dict[str, dict[str, Component]]:
        return {kind: dict(found) for kind, found in self._components.items()}

    def restore(self, snapshot: dict[str, dict[str, Component]]) -> None:
        self._components = {kind: dict(found) for kind, found in snapshot.items()}

    def make_register(self, kind: str, plugin: str, version: str, source: str) -> Callable[..., None]:
        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            options: type[pydantic.BaseModel] | None = None,
            description: str = "",
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {plugin!r} registered a {kind} with an invalid name {name!r}")
            if name in RESERVED_NAMES.get(kind, set()):
                raise PluginError(
                    f"plugin {plugin!r} registered a {kind} named {name!r}, a name reserved by the command line"
                )
            if not callable(factory):
                raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with a non-callable factory")
            if options is not None and not (isinstance(options, type) and issubclass(options, pydantic.BaseModel)):
                raise PluginError(f"plugin {plugin!r}: options for {kind} {name!r} must be a pydantic model class")
            if options is not None and options.model_config.get("extra") != "forbid":
                raise PluginError(
                    f"plugin {plugin!r}: options for {kind} {name!r} accept unknown keys (a typo would be "
                    f"ignored); derive them from cmcgns.plugins.Options"
                )
            existing = self._components[kind].get(name)
            if existing is not None:
                culprit, other = (
                    (existing.plugin, plugin)
                    if source == "builtin" and existing.source != "builtin"
                    else (plugin, existing.plugin)
                )
                raise PluginError(
                    f"duplicate {kind} name {name!r}: already registered by plugin {other!r}; "
                    f"plugin {culprit!r} must use another name"
                )
            self._components[kind][name] = Component(
                kind=kind,
                name=name,
                factory=factory,
                options=options or NoOptions,
                description=description,
                plugin=plugin,
                version=version,
                source=source,
            )

        return register

    def get(self, kind: str, name: str) -> Component:
        if kind not in self._components:
            raise KeyError(kind)
        try:
            return self._components[kind][name]
        except KeyError:
            known = ", ".join(sorted(self._components[kind])) or "none"
            skipped = "".join(f"; plugin {f.plugin!r} was skipped and may provide it: {f.error}" for f in self.failures)
            raise ConfigError(f"unknown {kind} {name!r}; available: {known}{skipped}") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def components(self) -> list[Component]:
        return [c for kind in KINDS for c in sorted(self._components[kind].values(), key=lambda c: c.name)]
