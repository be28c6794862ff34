"""Checks of the paths the driver will write, made before anything starts."""

from __future__ import annotations

import os
from pathlib import Path

from driver.errors import ConfigError


def check_writable(path: Path, flag: str) -> None:
    """ConfigError unless a file can be written at *path*: an existing directory is refused, and
    the nearest existing ancestor must be a directory this process may write in."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a directory; give a file path")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{flag} {str(path)!r}: no permission to write it")
        return
    check_directory_writable(path.parent, flag, str(path))


def check_directory_writable(directory: Path, flag: str, shown: str | None = None) -> None:
    """ConfigError unless *directory* exists as a writable directory or can be made."""
    ancestor = Path(directory).absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    shown = shown or str(directory)
    if not ancestor.is_dir():
        raise ConfigError(f"{flag} {shown!r}: {str(ancestor)!r} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {shown!r}: no permission to write in {str(ancestor)!r}")
