"""Checks of single values a user gives the driver, each raising a ConfigError that names where.

*where* starts every message (``task_config.toml: [tasks.train]`` or a flag such as
``--kill-grace``); the message goes on with the key, the value with ``!r`` and how to fix it.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from driver.errors import ConfigError

SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]*")  # never "", ".", "..", "a/b" or "-x"
MAX_NAME = 200


def expect(where: Any, key: str, value: Any, kind: type, what: str) -> None:
    """Refuse *value* unless it is a *kind* (*what* says what was expected, in words)."""
    if not isinstance(value, kind):
        label = f"{where} {key}".rstrip()
        raise ConfigError(f"{label} = {value!r}: expected {what}")


def expect_str_list(where: Any, key: str, value: Any) -> None:
    """Refuse *value* unless it is a list of strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} {key} = {value!r}: expected a list of strings")


def no_nul(where: str, text: str) -> None:
    """Refuse text holding NUL, which no command line, argument or environment can carry."""
    if "\0" in text:
        raise ConfigError(f"{where} = {text!r}: holds a NUL character (\\x00), which no command, "
                          f"argument or environment can carry; remove it")


def positive_finite(value: object, where: str) -> float:
    """*value* as a float if it is a finite number > 0, else a ConfigError naming *where*.

    For every number of seconds a user gives the driver: ``timeout`` in a task, ``--kill-grace``
    and ``--sample-interval`` in the CLI (``nan`` would disable a limit; ``inf`` is no limit, which
    is said by leaving the setting out).
    """
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or number <= 0:
        hint = "; leave it out for no limit" if number == math.inf else ""
        raise ConfigError(f"{where} = {value!r}: expected a finite number > 0{hint}")
    return float(number)


def whole_positive(where: str, key: str, value: Any) -> int | None:
    """*value* if it is None or a whole number > 0 (TOML integers are always finite)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ConfigError(f"{where} {key} = {value!r}: expected a whole number > 0")
    return value


def safe_name(where: str, kind: str, name: str) -> None:
    """Refuse a task or experiment *name* that could not be one directory under --runs-dir."""
    if SAFE_NAME.fullmatch(name) and len(name) <= MAX_NAME:
        return
    fixed = re.sub(r"[^A-Za-z0-9_.+\-]+", "_", name).strip("._+-")[:MAX_NAME] or "x"
    raise ConfigError(
        f"{where}: invalid {kind} name {name!r}: it names a directory under --runs-dir, so it may "
        f"hold only letters, digits and _ . + -, start with a letter, digit or _, and have at most "
        f"{MAX_NAME} characters; rename it, e.g. {fixed!r}")


def existing_directory(where: str, key: str, base: Path, value: Any) -> Path:
    """*value* (a path relative to *base*) resolved, if it names an existing directory."""
    expect(where, key, value, str, "a path string")
    no_nul(f"{where} {key}", value)
    resolved = base / value
    if not os.path.isdir(resolved):
        what = "is not a directory" if os.path.lexists(resolved) else "does not exist"
        raise ConfigError(f"{where} {key} = {value!r}: {resolved} {what}; {key} is relative to "
                          f"the folder of the config file: create the directory or fix the path")
    return resolved


def environment(where: str, env: Any) -> dict[str, str]:
    """*env* if it is a table of variable names (non-empty, no ``=`` or NUL) to NUL-free strings."""
    expect(where, "env", env, dict, "a table of NAME = \"value\"")
    checked: Mapping[str, Any] = env
    for name, value in checked.items():
        if not name or "=" in name or "\0" in name:
            raise ConfigError(f"{where} env: invalid variable name {name!r}: a name must be "
                              f"non-empty and hold no '=' or NUL; rename it")
        expect(where, f"env.{name}", value, str, "a string")
        no_nul(f"{where} env.{name}", value)
    return dict(checked)
