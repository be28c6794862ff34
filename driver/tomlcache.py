"""TOML documents parsed once, and kept the way Python keeps bytecode.

The driver reads task_config.toml on every start, and importing tomllib costs ~32M instructions
(a tenth of a trivial run): it compiles its regular expressions at import, in pure Python. So
the parsed document is kept beside the file, where Python would put the file's bytecode: in
``__pycache__/`` next to it, or under ``sys.pycache_prefix`` (PYTHONPYCACHEPREFIX); nothing is
written when ``sys.dont_write_bytecode`` (PYTHONDONTWRITEBYTECODE) is set, or where the folder
cannot be written.

A kept document is used only for exactly the bytes it was parsed from, by the same Python and
the same cache format: it holds those bytes and is compared with the file's, so a stale or
damaged cache is never used, only replaced. Documents that marshal cannot hold (TOML dates and
times) are parsed every time.
"""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when what is kept changes


def loads(data: bytes, path: Path) -> dict[str, Any]:
    """The TOML document *data* (the bytes of the file *path*). Raises what tomllib raises
    (TOMLDecodeError, a ValueError; RecursionError) and UnicodeDecodeError."""
    cache = cache_path(path)
    document = _kept(cache, data)
    if document is None:
        document = _parse(data)
        if not sys.dont_write_bytecode:
            _keep(cache, data, document)
    return document


def cache_path(path: Path) -> Path:
    """Where the document of the file *path* is kept."""
    folder = path.absolute().parent
    name = f"{path.name}.{sys.implementation.cache_tag}.marshal"
    if sys.pycache_prefix:
        return Path(sys.pycache_prefix, *folder.parts[1:], name)
    return folder / "__pycache__" / name


def _parse(data: bytes) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(data.decode("utf-8"))


def _kept(cache: Path, data: bytes) -> dict[str, Any] | None:
    try:
        kept = marshal.loads(cache.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None  # none kept yet, or damaged: parse again
    if not (isinstance(kept, tuple) and len(kept) == 4 and kept[:3] == (FORMAT, sys.version, data)
            and isinstance(kept[3], dict)):
        return None
    return kept[3]


def _keep(cache: Path, data: bytes, document: dict[str, Any]) -> None:
    try:
        blob = marshal.dumps((FORMAT, sys.version, data, document))
    except ValueError:
        return  # dates and times: marshal cannot hold them
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        os.replace(tmp, cache)  # atomic: a reader sees the old cache or the new one
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass  # never written
