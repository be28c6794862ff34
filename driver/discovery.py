"""Where plugins come from: distributions' entry points and drop-in folders.

Each function returns what it found as :class:`Found` (a name, where it came from, and how to
import it); :func:`driver.plugins.load_plugins` decides what to register.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from driver.errors import PluginError
from driver.records import Record

ENTRY_POINT_GROUP = "bench_driver"
PLUGIN_DIRS_ENV = "BENCH_DRIVER_PLUGINS_DIRS"


class Found(Record):
    """A plugin that can be loaded: its name, where it comes from, and its loader."""

    name: str
    kind: str  # "entry point" or "drop-in"
    source: str  # "entry point DIST VERSION", "drop-in"
    path: str | None
    load: Callable[[], Any]


def entry_points() -> list[Found]:
    """Every ``bench_driver`` entry point of the installed distributions; two distributions
    claiming one name is a PluginError naming both."""
    if not _any_entry_points():
        return []
    from importlib import metadata

    claimed: dict[str, tuple[str, str]] = {}  # entry-point name -> (distribution, its value)
    found = []
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            dist_name = dist.metadata["name"]
            if ep.name in claimed:
                if claimed[ep.name] == (dist_name, ep.value):
                    continue  # the same distribution seen twice on sys.path
                raise PluginError(
                    f"entry point {ep.name!r} is claimed by two distributions: "
                    f"{claimed[ep.name][0]} and {dist_name} ({ep.value}); uninstall one, or "
                    f"block it with -p no:{ep.name} (which blocks both)")
            claimed[ep.name] = (dist_name, ep.value)
            source = f"entry point {dist_name} {dist.version}"
            found.append(Found(ep.name, "entry point", source, None, _entry_loader(ep, source)))
    return found


def _entry_loader(ep: Any, source: str) -> Callable[[], Any]:
    def load() -> Any:
        try:
            return ep.load()
        except Exception as exc:
            raise PluginError(f"{source} ({ep.name} = {ep.value}) failed to import: "
                              f"{type(exc).__name__}: {exc}") from exc
    return load


def dropins(directory: Path, loaded: set[Path], builtin_stems: set[str]) -> list[Found]:
    """The drop-in ``*.py`` files of *directory* (not ``_*``, not already *loaded* paths, not
    the repository's own built-ins when *directory* is the ``plugins`` package)."""
    if not directory.is_dir():
        raise PluginError(f"plugin folder {str(directory)!r} does not exist or is not a folder")
    builtin_copy = (directory / "__init__.py").is_file()  # the repository's own plugins package
    found = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_") or path.resolve() in loaded:
            continue
        if builtin_copy and path.stem in builtin_stems:
            continue  # a built-in, already loaded from the installed package
        found.append(Found(path.stem, "drop-in", "drop-in", str(path.resolve()),
                           _file_loader(path)))
    return found


def _file_loader(path: Path) -> Callable[[], Any]:
    return lambda: import_file(path)


def dropin_dirs(explicit: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The drop-in folders in load order: *explicit* ones, then BENCH_DRIVER_PLUGINS_DIRS, each
    once."""
    dirs = [Path(d) for d in explicit]
    env = os.environ.get(PLUGIN_DIRS_ENV, "")
    dirs += [Path(d) for d in env.split(os.pathsep) if d]
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        resolved = d.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(d)
    return unique


def _any_entry_points() -> bool:
    """Whether any distribution on sys.path declares a ``bench_driver`` entry point.

    Reading the few ``entry_points.txt`` files is far cheaper than importing importlib.metadata
    and parsing every distribution's metadata, which is then done only when there is one.
    """
    marker = f"[{ENTRY_POINT_GROUP}]".encode()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(entry or ".", name, "entry_points.txt"), "rb") as f:
                        if marker in f.read():
                            return True
                except OSError:
                    continue
    return False


def import_file(path: Path) -> Any:
    """Import *path* under a module name unique to its location."""
    import hashlib
    import importlib.util

    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"bench_driver_dropin_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"drop-in plugin {str(path)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginError(
            f"drop-in plugin {str(path)!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return module
