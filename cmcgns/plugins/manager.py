"""Builds the plugin manager: built-ins first, then external entry points (group ``cmcgns``)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Iterator
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
    "cmcgns.samplers.oracle",
    "cmcgns.heads.cm_mir",
    "cmcgns.heads.mae_pixel",
    "cmcgns.downstream.classification",
    "cmcgns.downstream.zero_shot",
    "cmcgns.downstream.dense",
    "cmcgns.data.preprocess.registry",
)


def _builtin_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in BUILTIN_PLUGINS]


@dataclasses.dataclass(frozen=True)
class PluginFailure:
    """An external plugin that could not be loaded or registered: it is left out, the rest goes on."""

    plugin: str
    version: str
    source: str
    error: str

    def warning_line(self) -> str:
        return (
            f"cmcgns: warning: plugin {self.plugin!r} ({self.source}) is skipped: {self.error} "
            f"(fix or uninstall it, or set {DISABLE_EXTERNAL_ENV}=1)"
        )


def _external_modules(
    origins: dict[str, tuple[str, str]],
) -> Iterator[tuple[str, str, str, ModuleType | PluginFailure]]:
    """(name, version, source, module or PluginFailure) for every entry point of group `cmcgns`."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        source = f"entry point {dist_name}"
        label = f"{entry_point.value}, from {dist_name}"
        if entry_point.name in origins:
            error = f"its name is already used by another plugin ({label})"
            yield entry_point.name, version, source, PluginFailure(entry_point.name, version, source, error)
            continue
        try:
            module = entry_point.load()
        except (Exception, SystemExit) as exc:  # a broken third-party plugin must not look like our bug (nor exit)
            error = f"failed to load ({label}): {type(exc).__name__}: {exc}"
            yield entry_point.name, version, source, PluginFailure(entry_point.name, version, source, error)
            continue
        yield entry_point.name, version, source, module


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, tuple[str, str]], list[PluginFailure]]:
    """Return the manager, per registered plugin name its (version, source), and the external
    plugins that were left out because they failed to load, register or validate."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}
    for module in _builtin_modules():
        pm.register(module, name=module.__name__)
        origins[module.__name__] = (__version__, "builtin")
    pm.check_pending()  # a built-in with a misspelt hook is our bug: fail loudly
    failures: list[PluginFailure] = []
    if external_plugins_disabled():
        return pm, origins, failures
    for name, version, source, loaded in _external_modules(origins):
        if isinstance(loaded, PluginFailure):
            failures.append(loaded)
            continue
        try:
            pm.register(loaded, name=name)
            pm.check_pending()  # a hook name with a typo would otherwise be ignored without a word
        except (pluggy.PluginValidationError, ValueError) as exc:
            if pm.is_registered(loaded):
                pm.unregister(loaded)
            error = _validation_line(exc)
            failures.append(PluginFailure(name, version, source, error))
            continue
        origins[name] = (version, source)
    return pm, origins, failures


def _validation_line(exc: Exception) -> str:
    """pluggy's message names the plugin by its module's repr; say which hook is unknown, and the
    closest real one."""
    import difflib
    import re

    found = re.search(r"unknown hook '([^']+)'", str(exc))
    if not found:
        return f"{exc}; hooks are {', '.join(_hook_names())}"
    close = difflib.get_close_matches(found.group(1), _hook_names(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"it implements unknown hook {found.group(1)!r}{hint}; hooks are {', '.join(_hook_names())}"


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("register_")]


def _register_plugin(registry: Registry, pm: pluggy.PluginManager, plugin_name: str, version: str, source: str) -> None:
    label = BUILTIN_PLUGIN_NAME if source == "builtin" else plugin_name
    for kind, hook_name in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue
            try:
                impl.function(register=registry.make_register(kind, label, version, source))
            except PluginError:
                raise
            except (Exception, SystemExit) as exc:
                raise PluginError(f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


def build_registry() -> Registry:
    """Built-ins first (a failure there is raised: it is our bug), then each external plugin, all of
    its components or none: a plugin that fails is recorded in `registry.failures` and left out."""
    pm, origins, failures = build_plugin_manager()
    registry = Registry()
    registry.plugins.append({"plugin": BUILTIN_PLUGIN_NAME, "version": __version__, "source": "builtin"})
    for plugin_name, (version, source) in origins.items():
        if source == "builtin":
            _register_plugin(registry, pm, plugin_name, version, source)
    for plugin_name, (version, source) in origins.items():
        if source == "builtin":
            continue
        snapshot = registry.snapshot()
        try:
            _register_plugin(registry, pm, plugin_name, version, source)
        except PluginError as exc:
            registry.restore(snapshot)
            failures.append(PluginFailure(plugin_name, version, source, str(exc)))
            continue
        registry.plugins.append({"plugin": plugin_name, "version": version, "source": source})
    registry.failures = failures
    return registry


def get_registry(refresh: bool = False, warn: bool = True) -> Registry:
    """The process-wide registry; the first build prints one warning line per skipped plugin on
    stderr (`warn=False` for `cmcgns plugins`, which lists them)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = build_registry()
        if warn:
            for failure in _REGISTRY.failures:
                print(failure.warning_line(), file=sys.stderr)
    return _REGISTRY
