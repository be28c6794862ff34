"""The plugin manager: default plugins, entry points, drop-in folders, named registries.

Where plugins come from, in load order:

1. the built-ins in :data:`DEFAULT_PLUGINS` (modules of the ``plugins`` package);
2. installed distributions with an entry point in the ``bench_driver`` group (skipped when
   ``BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD`` is set, as pytest does);
3. drop-in ``*.py`` files (not starting with ``_``) in the ``plugins/`` folder beside the task config,
   in every ``--plugins-dir``, in the config's ``plugin_dirs`` and in ``BENCH_DRIVER_PLUGINS_DIRS``
   (``os.pathsep``-separated).

``-p no:NAME`` blocks a plugin by name before it loads (an unknown NAME is a configuration error).
What a run loaded is a :class:`PluginSet`; the driver hands it to the task's own Python code in
``BENCH_DRIVER_PLUGIN_SET``, so that :func:`load_task_plugins` there loads exactly the same plugins.
Every call into what the plugins register goes through :mod:`driver.guard`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Iterable, Iterator, Mapping

import pluggy

from driver import discovery, hookspecs
from driver.errors import ConfigError, PluginError, did_you_mean
from driver.guard import Guarded, Origin, call
from driver.records import Record

DISABLE_AUTOLOAD_ENV = "BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD"
PLUGIN_SET_ENV = "BENCH_DRIVER_PLUGIN_SET"

#: The built-in plugins. The core imports plugins only through this list.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.compute_methods",
    "plugins.cpu_memory",
    "plugins.gpu_nvml",
    "plugins.json_report",
    "plugins.console_report",
    "plugins.ci_report",
    "plugins.timeline_plot",
    "plugins.toy_search",
    "plugins.nas201",
    "plugins.searchers",
    "plugins.backends",
    "plugins.weight_sharing",
    "plugins.datagen",
    "plugins.surrogate",
    "plugins.history",
    "plugins.html_report",
)

#: Registry kind -> the hook that fills it.
REGISTRIES: dict[str, str] = {
    "compute_methods": "bench_driver_register_compute_methods",
    "samplers": "bench_driver_register_samplers",
    "reporters": "bench_driver_register_reporters",
    "searchers": "bench_driver_register_searchers",
    "search_spaces": "bench_driver_register_search_spaces",
    "evaluators": "bench_driver_register_evaluators",
    "nas_algorithms": "bench_driver_register_nas_algorithms",
    "commands": "bench_driver_register_commands",
    "config_tables": "bench_driver_register_config_tables",
    "backends": "bench_driver_register_backends",
}
#: Hooks called with arguments at a fixed moment (not registries).
CALL_HOOKS: tuple[str, ...] = ("bench_driver_addoption", "bench_driver_configure")


class PluginInfo(Record):
    """Where one registered plugin came from, for ``bench-driver plugins``."""

    name: str
    source: str  # "built-in", "entry point DIST VERSION", "drop-in", "module"
    path: str | None


class PluginSet(Record):
    """What to load: the driver's choice, handed unchanged to the task's own Python code."""

    dirs: tuple[str, ...] = ()  # absolute drop-in folders, in load order
    blocked: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    autoload: bool = True

    def to_env(self) -> str:
        """The value of ``BENCH_DRIVER_PLUGIN_SET`` for the task's environment."""
        return json.dumps(self._asdict(), separators=(",", ":"))

    @classmethod
    def from_env(cls, text: str) -> PluginSet:
        """The set a driver handed over; ConfigError when the variable is not one."""
        try:
            doc = json.loads(text)
            return cls(tuple(doc["dirs"]), tuple(doc["blocked"]), tuple(doc["modules"]),
                       bool(doc["autoload"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{PLUGIN_SET_ENV}={text[:80]!r} is not a plugin set written by "
                              f"bench-driver ({exc}); unset it") from None


_IMPL_MARK = hookspecs.PROJECT + "_impl"  # the attribute pluggy's @hookimpl sets
_SPEC_MARK = hookspecs.PROJECT + "_spec"  # ... and @hookspec


class _Manager(pluggy.PluginManager):
    """Treats any ``bench_driver_*`` function as a hook implementation, marked or not, so that a
    misspelt hook name is caught by ``check_pending`` instead of being silently ignored."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        hook_name = name.startswith(hookspecs.PROJECT + "_")
        if isinstance(plugin, ModuleType):  # a module's names, most of them imports and helpers,
            value = vars(plugin).get(name)  # read cheaply (pluggy's getattr_static is not)
            if isinstance(value, FunctionType):
                marked = getattr(value, _IMPL_MARK, None)  # what pluggy would read on it
                return marked if isinstance(marked, dict) else {} if hook_name else None
            if not hook_name and not hasattr(value, _IMPL_MARK):
                return None
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and hook_name:
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}
        return opts

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
        if isinstance(module_or_class, ModuleType):  # driver.hookspecs: its functions, cheaply
            value = vars(module_or_class).get(name)
            marked = getattr(value, _SPEC_MARK, None) if isinstance(value, FunctionType) else None
            return marked if isinstance(marked, dict) else None
        return super().parse_hookspec_opts(module_or_class, name)


class Plugins:
    """The loaded plugins and the named registries built from them."""

    def __init__(self, manager: pluggy.PluginManager, plugin_set: PluginSet = PluginSet(),
                 trace: bool = False) -> None:
        self.manager = manager
        self.infos: dict[str, PluginInfo] = {}
        self.plugin_set = plugin_set
        self.trace = trace  # print every hook call on stderr (--trace-hooks)
        self._registries: dict[str, dict[str, tuple[Any, str]]] = {}

    def registry(self, kind: str) -> dict[str, Any]:
        """``{name: object}`` contributed by every plugin for *kind* (see :data:`REGISTRIES`):
        the plugins' own objects, for listings and validation; call them through :meth:`get`."""
        return {name: obj for name, (obj, _) in self._entries(kind).items()}

    def get(self, kind: str, name: str) -> Guarded:
        """The object registered as *name* in *kind*, every call into it guarded."""
        return Guarded(self._entries(kind)[name][0], self.origin(kind, name))

    def items(self, kind: str) -> Iterator[tuple[str, Guarded]]:
        """``(name, guarded object)`` for every entry of *kind*, in registration order."""
        for name in self._entries(kind):
            yield name, self.get(kind, name)

    def origin(self, kind: str, name: str) -> Origin:
        """Plugin, file, hook and name of one registered object."""
        owner = self._entries(kind)[name][1]
        return Origin(owner, self._path(owner), REGISTRIES[kind], kind, name)

    def owner(self, kind: str, name: str) -> str:
        """The name of the plugin that registered *name* in *kind*."""
        return self._entries(kind)[name][1]

    def contributions(self, plugin_name: str) -> dict[str, list[str]]:
        """What one plugin registers: ``{kind: [names]}``."""
        found: dict[str, list[str]] = {}
        for kind in REGISTRIES:
            names = [n for n, (_, owner) in self._entries(kind).items() if owner == plugin_name]
            if names:
                found[kind] = names
        return found

    def call_hook(self, hook_name: str, **kwargs: Any) -> None:
        """Call a call hook (:data:`CALL_HOOKS`) on every plugin implementing it, guarded."""
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            self._trace(hook_name, impl.plugin_name)
            origin = Origin(impl.plugin_name, self._path(impl.plugin_name), hook_name)
            call(origin, f"{hook_name}()", impl.function, **kwargs)

    def _entries(self, kind: str) -> dict[str, tuple[Any, str]]:
        if kind not in self._registries:
            self._registries[kind] = self._build(kind)
        return self._registries[kind]

    def _build(self, kind: str) -> dict[str, tuple[Any, str]]:
        hook_name = REGISTRIES[kind]
        caller = getattr(self.manager.hook, hook_name)
        entries: dict[str, tuple[Any, str]] = {}
        for impl in caller.get_hookimpls():  # registration order: built-ins first
            for name, obj in self._call(impl, hook_name).items():
                if name in entries:
                    other = entries[name][1]
                    raise PluginError(
                        f"{kind[:-1].replace('_', ' ')} {name!r} is registered by two plugins: "
                        f"{self._describe(other)} and {self._describe(impl.plugin_name)}; "
                        f"rename one, or disable one with -p no:NAME"
                    )
                entries[name] = (obj, impl.plugin_name)
        return entries

    def _call(self, impl: Any, hook_name: str) -> Mapping[str, Any]:
        self._trace(hook_name, impl.plugin_name)
        origin = Origin(impl.plugin_name, self._path(impl.plugin_name), hook_name)
        result = call(origin, f"{hook_name}()", impl.function, returns=_registry_mapping)
        return result or {}

    def _trace(self, hook_name: str, plugin_name: str) -> None:
        if self.trace:
            print(f"[hook] {hook_name} -> {plugin_name}", file=sys.stderr)

    def _path(self, plugin_name: str) -> str | None:
        info = self.infos.get(plugin_name)
        return info.path if info else None

    def _describe(self, plugin_name: str) -> str:
        path = self._path(plugin_name)
        return f"{plugin_name!r}{f' ({path})' if path else ''}"


def _registry_mapping(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return "a registry hook must return a mapping {name: object}"
    if not all(isinstance(name, str) and name for name in value):
        return "every registered name must be a non-empty string"
    return None


def load_plugins(
    *,
    plugin_dirs: Iterable[str | os.PathLike[str]] = (),
    blocked: Iterable[str] = (),
    extra_modules: Iterable[str] = (),
    autoload: bool | None = None,
    trace: bool = False,
) -> Plugins:
    """Load every plugin and check their hooks. Raises :class:`PluginError` naming the culprit,
    or :class:`ConfigError` for a ``-p no:NAME`` that names no plugin."""
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    dirs = discovery.dropin_dirs(plugin_dirs)
    chosen = PluginSet(tuple(str(d.resolve()) for d in dirs), tuple(blocked),
                       tuple(extra_modules), autoload)
    manager = _Manager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in chosen.blocked:
        manager.set_blocked(name)
    plugins = Plugins(manager, plugin_set=chosen, trace=trace)
    seen: set[str] = set()  # every plugin name met, blocked or not: for "-p no:" checking
    for module_name in DEFAULT_PLUGINS:
        _register_module(plugins, module_name, "built-in", seen)
    for module_name in chosen.modules:
        _register_module(plugins, module_name, "module", seen)
    if autoload:
        for found in discovery.entry_points():
            _register_found(plugins, found, seen)
    for directory in dirs:
        builtin_stems = {m.rsplit(".", 1)[-1] for m in DEFAULT_PLUGINS}
        loaded = {Path(i.path).resolve() for i in plugins.infos.values() if i.path is not None}
        for found in discovery.dropins(directory, loaded, builtin_stems):
            _register_found(plugins, found, seen)
    _check_blocked(chosen.blocked, seen)
    _check_hooks(plugins)
    return plugins


def load_task_plugins() -> Plugins:
    """The plugins for a task's own Python code: exactly the set the driver that started it
    loaded (``BENCH_DRIVER_PLUGIN_SET``), or the defaults when run by hand."""
    text = os.environ.get(PLUGIN_SET_ENV)
    if not text:
        return load_plugins()
    chosen = PluginSet.from_env(text)
    return load_plugins(plugin_dirs=chosen.dirs, blocked=chosen.blocked,
                        extra_modules=chosen.modules, autoload=chosen.autoload)


def _check_blocked(blocked: Iterable[str], seen: set[str]) -> None:
    for name in blocked:
        if name not in seen:
            listing = ", ".join(sorted(seen))
            raise ConfigError(f"-p no:{name}: no plugin is named {name!r}"
                              f"{did_you_mean(name, seen)}; plugins: {listing}")


def _register(plugins: Plugins, module: Any, name: str, info: PluginInfo) -> None:
    try:
        plugins.manager.register(module, name=name)
    except Exception as exc:
        raise PluginError(f"plugin {name!r} ({info.source}) could not be registered: {exc}") from exc
    plugins.infos[name] = info


def _register_found(plugins: Plugins, found: discovery.Found, seen: set[str]) -> None:
    """Register a plugin discovery found, unless it is blocked or (an entry point met twice)
    already there; a second drop-in of one name is kept under its path."""
    seen.add(found.name)
    if plugins.manager.is_blocked(found.name):
        return
    name = found.name
    if plugins.manager.get_plugin(name) is not None:
        if found.kind == "entry point":
            return
        name = str(found.path)  # two folders each with random.py: keep both, named by path
    module = found.load()
    _register(plugins, module, name, PluginInfo(name, found.source,
                                                found.path or getattr(module, "__file__", None)))


def _register_module(plugins: Plugins, module_name: str, source: str, seen: set[str]) -> None:
    short = module_name.rsplit(".", 1)[-1]
    seen.update((short, module_name))
    if plugins.manager.is_blocked(short) or plugins.manager.is_blocked(module_name):
        return
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(
            f"{source} plugin {module_name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    _register(plugins, module, short, PluginInfo(short, source, getattr(module, "__file__", None)))


def _check_hooks(plugins: Plugins) -> None:
    """Misspelt hooks: every ``bench_driver_*`` function must match a hook in driver.hookspecs."""
    known = sorted([*REGISTRIES.values(), *CALL_HOOKS])
    for name, hook_caller in vars(plugins.manager.hook).items():
        if hook_caller.spec is not None:
            continue
        for impl in hook_caller.get_hookimpls():
            info = plugins.infos.get(impl.plugin_name)
            where = f" ({info.path})" if info and info.path else ""
            raise PluginError(
                f"plugin {impl.plugin_name!r}{where} implements unknown hook {name!r}"
                f"{did_you_mean(name, known)}; the hooks are listed in driver/hookspecs.py"
            )
    try:
        plugins.manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r}: {exc}") from exc
