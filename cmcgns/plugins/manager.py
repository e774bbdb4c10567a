"""Builds the plugin manager: built-ins first, then external entry points (group ``cmcgns``)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from types import ModuleType

import pluggy

from cmcgns import __version__
from cmcgns.errors import PluginError
from cmcgns.plugins import hookspecs
from cmcgns.plugins.registry import KINDS, Registry

ENTRY_POINT_GROUP = "cmcgns"
DISABLE_EXTERNAL_ENV = "CMCGNS_DISABLE_EXTERNAL_PLUGINS"
BUILTIN_PLUGIN_NAME = "cmcgns"

_REGISTRY: Registry | None = None


def external_plugins_disabled() -> bool:
    return os.environ.get(DISABLE_EXTERNAL_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# Every built-in component registers itself beside its code, through the same hooks a third-party plugin
# implements (llm's DEFAULT_PLUGINS): add a module here to add a built-in.
BUILTIN_PLUGINS = (
    "cmcgns.samplers.cm_cgns",
    "cmcgns.samplers.in_batch",
    "cmcgns.heads.cm_mir",
    "cmcgns.heads.mae_pixel",
    "cmcgns.downstream.classification",
    "cmcgns.downstream.dense",
    "cmcgns.data.preprocess.registry",
)


def _builtin_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in BUILTIN_PLUGINS]


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, tuple[str, str]]]:
    """Return the manager and, per registered plugin name, its (version, source)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}
    for module in _builtin_modules():
        pm.register(module, name=module.__name__)
        origins[module.__name__] = (__version__, "builtin")
    if external_plugins_disabled():
        return pm, origins
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        label = f"{entry_point.name} ({entry_point.value}, from {dist_name})"
        if entry_point.name in origins:
            raise PluginError(f"plugin name {entry_point.name!r} is used twice: {label}")
        try:
            module = entry_point.load()
        except (Exception, SystemExit) as exc:  # a broken third-party plugin must not look like our bug (nor exit)
            raise PluginError(f"plugin {label} failed to load: {type(exc).__name__}: {exc}") from exc
        try:
            pm.register(module, name=entry_point.name)
        except Exception as exc:
            raise PluginError(f"plugin {label} could not be registered: {exc}") from exc
        origins[entry_point.name] = (version, f"entry point {dist_name}")
    try:
        pm.check_pending()  # a hook name with a typo would otherwise be ignored without a word
    except pluggy.PluginValidationError as exc:
        label = next((f"{n} ({o[1]})" for n, o in origins.items() if n == getattr(exc.plugin, "__name__", None)), "")
        raise PluginError(f"plugin {label or exc.plugin!r}: {exc}; hooks are {', '.join(_hook_names())}") from None
    return pm, origins


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("register_")]


def build_registry() -> Registry:
    pm, origins = build_plugin_manager()
    registry = Registry()
    registry.plugins.append({"plugin": BUILTIN_PLUGIN_NAME, "version": __version__, "source": "builtin"})
    for plugin_name, (version, source) in origins.items():
        if source != "builtin":
            registry.plugins.append({"plugin": plugin_name, "version": version, "source": source})
    for kind, hook_name in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order: built-ins first, so a clash blames the plugin
            version, source = origins.get(impl.plugin_name, ("?", "?"))
            label = BUILTIN_PLUGIN_NAME if source == "builtin" else impl.plugin_name
            register = registry.make_register(kind, label, version, source)
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                ) from exc
    return registry


def get_registry(refresh: bool = False) -> Registry:
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = build_registry()
    return _REGISTRY
