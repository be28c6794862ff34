r"""``bench-driver convert-cfg``: an old awslabs deeplearning-benchmark INI task config -> TOML.

Every section becomes ``[tasks.<section>]``, including the ones the old driver could not read
(its interpolating ConfigParser crashed on any ``%``): values are read raw and kept verbatim; the
three lists are evaluated with ``ast.literal_eval`` as the old driver did, so each regex is the
exact string it gave to ``re``. Whatever cannot be converted is kept as a string and named in a
warning. Commands become templates (a literal brace is written ``{{``); ``--epochs N`` becomes
``--epochs {epochs}`` with ``[tasks.X.params] epochs = N``, so ``--set epochs=2`` replaces the old
``--epochs`` flag (``--gpus``, ``--kvstore`` and ``--dtype`` stay as written).

TOML is written here, not with tomli_w: it writes only basic strings, doubling every backslash of
a regex (``"(\\d+)"``); literal strings (``'(\d+)'``) are used wherever TOML allows, and the
output is read back and compared before it is returned.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import os
import re
import sys
import warnings

from driver.errors import BenchDriverError, ConfigError

LIST_KEYS = ("patterns", "metrics", "compute_method")
KNOWN_KEYS = ("command_to_execute", "num_gpus", *LIST_KEYS)
_EPOCHS = re.compile(r"(?<![\w-])(--epochs[ =])(\d+)(?![\w.])")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def convert_cfg(text: str, source_name: str) -> tuple[str, list[str]]:
    """Convert the INI *text* read from *source_name*; return the TOML text and the warnings.

    Raises ConfigError, naming the file and line, when *text* is not a readable INI file.
    """
    parser = _read_ini(text, source_name)
    notes: list[str] = []
    if parser.defaults():
        notes.append(f"{source_name}: [DEFAULT] keys {sorted(parser.defaults())} were copied into"
                     " every section, as the old driver saw them")
    tasks = {section: _convert_section(dict(parser.items(section)),
                                       f"{source_name}: [{section}]", notes)
             for section in parser.sections()}
    header = f"# Converted by `bench-driver convert-cfg` from {source_name}".replace("\n", " ")
    toml_text = _dump_tasks(tasks, [header, "# (an awslabs deeplearning-benchmark INI task"
                                            " config); every section is kept."])
    _check_round_trip(toml_text, {"tasks": tasks})
    return toml_text, notes


def _read_ini(text: str, source: str) -> configparser.RawConfigParser:
    """Parse *text* without interpolation; turn configparser's errors into ConfigError."""
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source=source)
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(f"{source}:{exc.lineno}: {exc.line.strip()!r} comes before any"
                          " [section] header; put it under a task section") from exc
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as exc:
        what = f"[{exc.section}] {getattr(exc, 'option', '')}".strip()
        raise ConfigError(f"{source}:{exc.lineno}: {what} appears twice; keep one") from exc
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        with contextlib.suppress(ValueError, SyntaxError):  # some Pythons store repr(line)
            line = str(ast.literal_eval(line)) if line[:1] in "'\"" else line
        raise ConfigError(f"{source}:{lineno}: {line.strip()!r} is not `key = value`, a comment"
                          " or a [section] header") from exc
    if not parser.sections():
        raise ConfigError(f"{source}: no [section] found; is this an old task_config.cfg?")
    return parser


def _convert_section(items: dict[str, str], where: str, notes: list[str]) -> dict[str, object]:
    """One INI section -> one task table; warnings are appended to *notes*."""
    notes += [f"{where} {key} = {_short(value)}: kept verbatim; {_percent_hint(value)}"
              for key, value in items.items() if "%" in value]
    missing = [key for key in KNOWN_KEYS if key not in items]
    if missing:
        notes.append(f"{where} has no {', '.join(missing)} (a metrics-policy section of"
                     " benchmark_runner.py?); kept as is: add them before running it")
    task: dict[str, object] = {}
    if "command_to_execute" in items:
        task["command_to_execute"] = items["command_to_execute"]
    if "num_gpus" in items:
        try:
            task["num_gpus"] = int(items["num_gpus"])
        except ValueError:
            task["num_gpus"] = items["num_gpus"]
            notes.append(f"{where} num_gpus = {items['num_gpus']!r} is not an integer;"
                         " kept as a string: write a whole number")
    for key in LIST_KEYS:
        if key in items:
            task[key] = _list_or_string(items[key], f"{where} {key}", notes)
    lengths = {key: len(v) for key in LIST_KEYS if isinstance(v := task.get(key), list)}
    if len(lengths) == 3 and len(set(lengths.values())) > 1:
        notes.append(f"{where} patterns, metrics and compute_method differ in length: {lengths}")
    for key, value in items.items():
        if key not in KNOWN_KEYS:
            task[key] = value
            notes.append(f"{where} {key} = {_short(value)}: unknown key, kept as a string")
    if isinstance(task.get("command_to_execute"), str):
        _command_template(task, where, notes)
    return task


def _list_or_string(value: str, where: str, notes: list[str]) -> list[str] | str:
    """Evaluate *value* as the old driver did (``ast.literal_eval``); on failure keep the string."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # '\d' in a non-raw literal warns; the old driver ran it
        try:
            parsed = ast.literal_eval(value.strip())
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            problem = "is not a Python list literal"
        else:
            if isinstance(parsed, (list, tuple)) and all(isinstance(s, str) for s in parsed):
                _warn_control_chars(list(parsed), where, notes)
                return list(parsed)
            problem = f"evaluates to a {type(parsed).__name__}, not a list of strings"
    notes.append(f"{where} = {_short(value)} {problem}; kept as a string:"
                 " write it as ['a', 'b'], each item a quoted string")
    return value


def _warn_control_chars(strings: list[str], where: str, notes: list[str]) -> None:
    """Flag a '\\b' or '\\1' that Python, not re, read: a backspace is not a word boundary."""
    notes += [f"{where}[{i}] = {s!r} holds a control character: Python read an escape like '\\b'"
              " or '\\1' in the old file (the old driver searched for it too); kept as is:"
              " double the backslash if a regex escape was meant"
              for i, s in enumerate(strings) if any(ord(c) < 9 for c in s)]


def _percent_hint(value: str) -> str:
    """Why a ``%`` matters: the old driver's ConfigParser interpolated it, or crashed on it."""
    hints = ["'%(name)s' was ConfigParser interpolation in the old driver: write the referenced"
             " value instead"] if "%(" in value else []
    if "%%" in value:
        hints.append("'%%' was ConfigParser's escape for '%': write '%' if it was meant so")
    return "; ".join(hints) or "the old driver crashed on this '%' (ConfigParser interpolation)"


def _command_template(task: dict[str, object], where: str, notes: list[str]) -> None:
    """Make the command a template (a brace doubled) with ``--epochs {epochs}`` if unambiguous."""
    command = str(task["command_to_execute"]).replace("{", "{{").replace("}", "}}")
    task["command_to_execute"] = command
    values = {int(m.group(2)) for m in _EPOCHS.finditer(command)}
    if len(values) > 1:
        notes.append(f"{where} command_to_execute: --epochs left as written (several values"
                     f" {sorted(values)}); add {{epochs}} and [params] by hand for --set epochs=N")
    elif values and "params" not in task:
        task["command_to_execute"] = _EPOCHS.sub(r"\1{epochs}", command)
        task["params"] = {"epochs": values.pop()}


def _dump_tasks(tasks: dict[str, dict[str, object]], header: list[str]) -> str:
    """Write ``{"tasks": tasks}`` as TOML: the scalars of a task, then sub-tables (``params``)."""
    lines = list(header)
    for name, task in tasks.items():
        table = f"tasks.{_toml_key(name)}"
        lines += ["", f"[{table}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in task.items()
                  if not isinstance(v, dict)]
        for sub, values in task.items():
            if isinstance(values, dict):
                lines += ["", f"[{table}.{_toml_key(sub)}]"]
                lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    """A str, int or list of str as TOML; a list too long for one line gets a line per item."""
    if isinstance(value, list):
        one_line = "[" + ", ".join(_toml_value(v) for v in value) + "]"
        if len(one_line) <= 80:
            return one_line
        return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
    return str(value) if isinstance(value, int) else _toml_string(str(value))


def _toml_string(s: str) -> str:
    """A TOML literal string ``'...'`` when allowed (no ``'``, no control character), else basic."""
    def control(c: str) -> bool:
        return ord(c) < 32 or ord(c) == 127

    if "'" not in s and not any(control(c) for c in s):
        return f"'{s}'"
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if control(c) else c)
                         for c in s) + '"'


def _toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _check_round_trip(toml_text: str, data: dict[str, object]) -> None:
    """Read the output back: a difference is a bug here, and must never be written silently."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    if tomllib.loads(toml_text) != data:
        raise BenchDriverError("convert-cfg produced TOML that does not read back as its input;"
                               " this is a bug in bench-driver, please report it")


def _short(value: str, limit: int = 120) -> str:
    """``repr`` of *value*, shortened for a one-line warning."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def main_convert(old_path: str, output: str | None) -> int:
    """Convert *old_path*; write the TOML to *output* atomically, or to stdout when None.

    Warnings go to stderr. Returns 0. Raises ConfigError when the input cannot be read or parsed,
    or the output cannot be written.
    """
    try:
        with open(old_path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{old_path}: byte {exc.start} ({exc.object[exc.start:exc.start + 1]!r})"
                          " is not UTF-8; re-save the file as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{old_path}: cannot read the old task config: {exc.strerror}") from exc
    toml_text, notes = convert_cfg(text, old_path)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if output is None:
        sys.stdout.write(toml_text)
    else:
        _write_atomically(output, toml_text, old_path)
    print(f"converted {old_path} to {output or 'stdout'}: {len(notes)} warning(s)",
          file=sys.stderr)
    return 0


def _write_atomically(path: str, text: str, source: str) -> None:
    """Write *path* atomically (never over the input, never into a folder that is not there)."""
    from driver.results import write_text_atomic

    if os.path.exists(path) and os.path.samefile(path, source):
        raise ConfigError(f"{path}: is the input file; choose another output with -o")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"{path}: cannot write: no such directory {parent!r}")
    write_text_atomic(path, text)
