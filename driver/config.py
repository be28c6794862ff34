"""task_config.toml -> frozen TaskSpec / MetricSpec, with every check made before anything runs.

Two ways to declare metrics, mixable in one task:

* the old driver's three parallel lists ``patterns``, ``metrics``, ``compute_method`` (an old INI
  section converts by changing only list syntax), with ``optional_metrics = [...]``;
* one table per metric: ``[[tasks.NAME.metric]]`` with ``name``, ``pattern``, ``compute_method``
  and optionally ``optional``, ``unit``, ``direction`` (``"higher"`` or ``"lower"`` is better).

``[defaults]`` is inherited by every task, and ``extends = "other_task"`` inherits another task's
table (``params`` and ``env`` tables merge key by key; the task's own keys win).
Commands take named parameters ``{epochs}``: defaults in ``[tasks.NAME.params]``, overridden by
``--set epochs=2``; every value is quoted for the place it stands in (unquoted, '...' or "...";
other placements are refused, see :mod:`driver.command`). Built-in parameters: ``{python}``
(this interpreter), ``{num_gpus}``, ``{seed}``, ``{repetition}``, ``{run_dir}``.

Task and experiment names become directory names under ``--runs-dir``: letters, digits and
``_ . + -``, starting with a letter, digit or ``_``. Numbers such as ``timeout`` must be finite
and > 0 (leave ``timeout`` out for no timeout); text given to the system (the command, parameters,
``env``) must not hold NUL characters, and ``cwd`` must be an existing directory.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

from driver.checks import (
    environment, existing_directory, expect, expect_str_list, no_nul, positive_finite, safe_name,
    whole_positive,
)
from driver.command import Placeholder, parse_template, render
from driver.errors import ConfigError, did_you_mean
from driver.records import Record
from driver.tomlcache import loads as toml_loads

DEFAULT_CONFIG = "task_config.toml"
TOP_LEVEL_KEYS = ("defaults", "tasks", "experiments", "plugin_dirs")
TASK_KEYS = (
    "command_to_execute", "num_gpus", "patterns", "metrics", "compute_method", "optional_metrics",
    "metric", "params", "timeout", "workers", "framework", "cwd", "env", "description", "extends",
)
METRIC_KEYS = ("name", "pattern", "compute_method", "optional", "unit", "direction")
BUILTIN_PARAMS = ("python", "num_gpus", "seed", "repetition", "run_dir")
_PERCENTILE = r"p\d+"  # compiled where used (re caches it)
_METRIC_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
ParamValue = str | int | float | bool


class MetricSpec(Record):
    """One metric: the pattern whose single group (or group ``value``) feeds it, and its reduction."""

    name: str
    pattern: str
    compute_method: str
    optional: bool = False
    unit: str | None = None
    direction: str | None = None  # "higher" or "lower" is better; None if not declared

    def compile(self) -> re.Pattern[bytes]:
        """The pattern compiled for scanning raw log bytes, one line at a time (MULTILINE)."""
        return re.compile(self.pattern.encode("utf-8"), re.MULTILINE)


class TaskSpec(Record):
    """A validated task, ready to run. ``command`` is a template; see :meth:`render_command`."""

    name: str
    command: str
    metrics: tuple[MetricSpec, ...]
    num_gpus: int = 0
    params: Mapping[str, ParamValue] = {}
    timeout_s: float | None = None
    workers: int | None = None
    framework: str | None = None
    cwd: Path = Path(".")
    env: Mapping[str, str] = {}
    description: str = ""
    source: str = DEFAULT_CONFIG

    def render_command(self, builtins: Mapping[str, ParamValue]) -> str:
        """Substitute parameters (task defaults, overridden by --set, then built-ins), quoted."""
        values = {k: param_text(v) for k, v in {**self.params, **builtins}.items()}
        where = f"{self.source}: [tasks.{self.name}] command_to_execute"
        return render(parse_template(self.command, where), values, where)


class TaskConfig(Record):
    """A parsed task_config.toml: raw task tables, resolved lazily into TaskSpecs, and the raw
    top-level tables plugins claimed (``bench_driver_register_config_tables``), for them to check."""

    path: Path
    defaults: Mapping[str, Any]
    tasks: Mapping[str, Mapping[str, Any]]
    experiments: Mapping[str, Any]
    plugin_dirs: tuple[Path, ...]
    tables: Mapping[str, Any] = {}

    def task(
        self,
        name: str,
        compute_methods: Collection[str],
        overrides: Mapping[str, str] | None = None,
    ) -> TaskSpec:
        """Validate task *name* with ``--set`` *overrides*; raise ConfigError naming what is wrong."""
        if name not in self.tasks:
            listing = ", ".join(sorted(self.tasks)) or "(none)"
            raise ConfigError(
                f"{self.path}: no task {name!r}{did_you_mean(name, self.tasks)}; tasks: {listing}"
            )
        return _build_task(self.path, name, self._resolve(name, ()), compute_methods,
                           overrides or {})

    def _resolve(self, name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        """The task's table over its ``extends`` chain, over ``[defaults]``."""
        table = self.tasks[name]
        parent = table.get("extends")
        if parent is None:
            return _merge(self.defaults, table)
        where = f"{self.path}: [tasks.{name}] extends = {parent!r}"
        if not isinstance(parent, str) or parent not in self.tasks:
            raise ConfigError(f"{where}: no such task{did_you_mean(str(parent), self.tasks)}")
        if parent in seen + (name,):
            raise ConfigError(f"{where}: a cycle ({' -> '.join(seen + (name, parent))})")
        merged = _merge(self._resolve(parent, seen + (name,)), table)
        del merged["extends"]
        return merged


def load_config(path: str | Path = DEFAULT_CONFIG,
                plugin_tables: Mapping[str, str] | None = None) -> TaskConfig:
    """Read and structurally check a task config file. *plugin_tables* names the top-level
    tables plugins own (``{key: description}``): they are accepted and kept raw."""
    path = Path(path)
    data = _read_toml(path)
    claimed = dict(plugin_tables or {})
    known = TOP_LEVEL_KEYS + tuple(claimed)
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown top-level key {key!r}{did_you_mean(key, known)}; "
                f"known: {', '.join(known)}"
            )
    tasks = data.get("tasks", {})
    expect(path, "[tasks]", tasks, dict, "a table of [tasks.NAME] tables")
    for name, table in tasks.items():
        expect(path, f"[tasks.{name}]", table, dict, "a table")
    defaults = data.get("defaults", {})
    expect(path, "[defaults]", defaults, dict, "a table")
    dirs = data.get("plugin_dirs", [])
    expect_str_list(path, "plugin_dirs", dirs)
    experiments = data.get("experiments", {})
    expect(path, "[experiments]", experiments, dict, "a table")
    for kind, names in (("task", tasks), ("experiment", experiments)):
        for name in names:
            safe_name(f"{path}: [{kind}s.{name!r}]", kind, name)
    return TaskConfig(
        path, defaults, tasks, experiments, tuple(path.parent / d for d in dirs),
        {k: v for k, v in data.items() if k in claimed},
    )


def plugin_dirs_of(path: str | Path) -> list[Path]:
    """The ``plugin_dirs`` of the config at *path*, read leniently before plugins load (a config
    that cannot be read gives none here; the command that needs it reports why)."""
    try:
        path = Path(path)
        dirs = toml_loads(path.read_bytes(), path).get("plugin_dirs", [])
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        return []
    return [Path(path).parent / d for d in dirs]


def parse_overrides(
    pairs: Sequence[str], flag: str = "--set", example: str = "epochs=2"
) -> dict[str, str]:
    """``["epochs=2", ...]`` from ``--set`` (or another NAME=VALUE flag) -> ``{"epochs": "2"}``."""
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r}: expected NAME=VALUE, for example {flag} {example}")
        found[key.strip()] = value
    return found


def param_text(value: ParamValue) -> str:
    """A parameter value as the command sees it (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return toml_loads(path.read_bytes(), path)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such task config; pass --config PATH or run where task_config.toml is"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; pass --config {path / DEFAULT_CONFIG} "
                          f"or the path of another task config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the task config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        column = exc.start - exc.object.rfind(b"\n", 0, exc.start)
        raise ConfigError(f"{path}: not UTF-8 text (line {line}, column {column}: byte "
                          f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8") from None
    except ValueError as exc:  # tomllib's TOMLDecodeError (after UnicodeDecodeError, also one)
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None


def _merge(defaults: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **task}
    for key in ("params", "env"):
        if isinstance(defaults.get(key), dict) and isinstance(task.get(key), dict):
            merged[key] = {**defaults[key], **task[key]}
    return merged


def _build_task(
    path: Path,
    name: str,
    table: Mapping[str, Any],
    compute_methods: Collection[str],
    overrides: Mapping[str, str],
) -> TaskSpec:
    where = f"{path}: [tasks.{name}]"
    for key in table:
        if key not in TASK_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(key, TASK_KEYS)}; "
                f"known keys: {', '.join(TASK_KEYS)}"
            )
    if "command_to_execute" not in table:
        raise ConfigError(f"{where}: missing command_to_execute (the shell command to benchmark)")
    command = table["command_to_execute"]
    expect(where, "command_to_execute", command, str, "a string")
    num_gpus = table.get("num_gpus", 0)
    if not isinstance(num_gpus, int) or isinstance(num_gpus, bool) or num_gpus < 0:
        raise ConfigError(f"{where} num_gpus = {num_gpus!r}: expected a whole number >= 0")
    params = _params(where, table.get("params", {}), overrides)
    _check_placeholders(where, command, params)
    metrics = _list_metrics(where, table) + _table_metrics(where, table.get("metric", []))
    _check_metrics(where, metrics, compute_methods)
    cwd = existing_directory(where, "cwd", path.parent, table.get("cwd", "."))
    env = environment(where, table.get("env", {}))
    framework = table.get("framework")
    if framework is not None:
        expect(where, "framework", framework, str, "a string")
    description = table.get("description", "")
    expect(where, "description", description, str, "a string")
    return TaskSpec(
        name=name,
        command=command,
        metrics=tuple(metrics),
        num_gpus=num_gpus,
        params=params,
        timeout_s=_timeout(where, table.get("timeout")),
        workers=whole_positive(where, "workers", table.get("workers")),
        framework=framework,
        cwd=cwd,
        env=env,
        description=description,
        source=str(path),
    )


def _params(
    where: str, table: Any, overrides: Mapping[str, str]
) -> dict[str, ParamValue]:
    expect(where, "params", table, dict, "a table of NAME = default")
    params: dict[str, ParamValue] = {}
    for key, value in table.items():
        if key in BUILTIN_PARAMS:
            raise ConfigError(f"{where} params.{key}: {key!r} is a built-in parameter; rename it")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(
                f"{where} params.{key} = {value!r}: expected a string, number or boolean"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} params.{key} = {value!r}: expected a finite number; "
                              f"write it as a string (\"{value}\") if the command wants that text")
        if isinstance(value, str):
            no_nul(f"{where} params.{key}", value)
        params[key] = value
    for key, value in overrides.items():
        if key not in params:
            known = ", ".join(sorted(params)) or "(none)"
            raise ConfigError(
                f"--set {key}={value}: task {where.split('[tasks.')[-1][:-1]!r} has no parameter "
                f"{key!r}{did_you_mean(key, params)}; its parameters: {known}"
            )
        no_nul(f"--set {key}", value)
        params[key] = value
    return params


def _check_placeholders(where: str, command: str, params: Mapping[str, ParamValue]) -> None:
    at = f"{where} command_to_execute"
    no_nul(at, command)
    known = set(params) | set(BUILTIN_PARAMS)
    for part in parse_template(command, at):
        if isinstance(part, Placeholder) and part.name not in known:
            raise ConfigError(
                f"{at} uses {{{part.name}}}, which is not a parameter"
                f"{did_you_mean(part.name, known)}; declare it in [{where.split('[')[-1][:-1]}"
                f".params] with a default, or write a literal brace as {{{{ }}}}"
            )


def _list_metrics(where: str, table: Mapping[str, Any]) -> list[MetricSpec]:
    lists = {k: table.get(k, []) for k in ("patterns", "metrics", "compute_method")}
    for key, value in lists.items():
        expect_str_list(where, key, value)
    lengths = {k: len(v) for k, v in lists.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ConfigError(
            f"{where}: patterns, metrics and compute_method must have one entry per metric; "
            f"{detail}"
        )
    optional = table.get("optional_metrics", [])
    expect_str_list(where, "optional_metrics", optional)
    for name in optional:
        if name not in lists["metrics"]:
            raise ConfigError(
                f"{where} optional_metrics: {name!r} is not in metrics"
                f"{did_you_mean(name, lists['metrics'])}"
            )
    return [
        MetricSpec(m, p, c, optional=m in optional)
        for p, m, c in zip(lists["patterns"], lists["metrics"], lists["compute_method"])
    ]


def _table_metrics(where: str, tables: Any) -> list[MetricSpec]:
    if not isinstance(tables, list):
        raise ConfigError(f"{where} metric: expected [[tasks.NAME.metric]] tables")
    specs = []
    for i, t in enumerate(tables):
        at = f"{where} metric[{i}]"
        expect(at, "", t, dict, "a table")
        for key in t:
            if key not in METRIC_KEYS:
                raise ConfigError(
                    f"{at}: unknown key {key!r}{did_you_mean(key, METRIC_KEYS)}; "
                    f"known: {', '.join(METRIC_KEYS)}"
                )
        for key in ("name", "pattern", "compute_method"):
            if key not in t:
                raise ConfigError(f"{at}: missing {key!r}")
            expect(at, key, t[key], str, "a string")
        direction = t.get("direction")
        if direction not in (None, "higher", "lower"):
            raise ConfigError(f"{at} direction = {direction!r}: expected \"higher\" or \"lower\"")
        optional = t.get("optional", False)
        expect(at, "optional", optional, bool, "true or false")
        unit = t.get("unit")
        if unit is not None:
            expect(at, "unit", unit, str, "a string")
        specs.append(MetricSpec(t["name"], t["pattern"], t["compute_method"], optional, unit,
                                direction))
    return specs


def _check_metrics(where: str, metrics: list[MetricSpec], methods: Collection[str]) -> None:
    seen: set[str] = set()
    for i, m in enumerate(metrics):
        at = f"{where} metric {m.name!r}"
        if not _METRIC_NAME.fullmatch(m.name):
            raise ConfigError(f"{at}: invalid metric name; use letters, digits, _ . -")
        if m.name in seen:
            raise ConfigError(f"{at}: declared twice")
        seen.add(m.name)
        if m.compute_method not in methods:
            named = sorted(n for n in methods if not re.fullmatch(_PERCENTILE, n))
            raise ConfigError(
                f"{at}: unknown compute_method {m.compute_method!r}"
                f"{did_you_mean(m.compute_method, methods)}; known: {', '.join(named)}, pNN"
            )
        _check_pattern(f"{at} pattern", m.pattern)


def _check_pattern(at: str, pattern: str) -> None:
    try:
        compiled = re.compile(pattern.encode("utf-8"), re.MULTILINE)
    except re.error as exc:
        pointer = f"\n    {pattern}\n    {' ' * (exc.pos or 0)}^" if exc.pos is not None else ""
        raise ConfigError(f"{at} {pattern!r}: invalid regex: {exc.msg} at position {exc.pos}"
                          f"{pointer}") from None
    except Exception as exc:  # noqa: BLE001 - OverflowError, RecursionError...: any is bad input
        raise ConfigError(f"{at} {pattern!r}: the regex engine rejects it "
                          f"({type(exc).__name__}: {exc}); simplify it (smaller repeat counts "
                          f"such as {{1,1000}}, less nesting)") from None
    if compiled.groups != 1 and "value" not in compiled.groupindex:
        raise ConfigError(
            f"{at} {pattern!r}: has {compiled.groups} capture groups; it needs exactly one "
            f"(the number), or a group named 'value'; make other groups non-capturing: (?:...)"
        )


def _timeout(where: str, value: Any) -> float | None:
    return None if value is None else positive_finite(value, f"{where} timeout")
