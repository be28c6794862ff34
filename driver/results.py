"""Results: the old flat JSON object and the versioned run record, both written atomically.

The flat result (``dlbenchmark_result.json``) keeps the old driver's contract: one object, keys
``[framework.]task.metric[.suffix]`` (:func:`result_key`), values numbers. Metrics that were not
found are left out (never NaN) and named in the record and on the console.

The run record (``record.json`` in the run directory) is a versioned document (pyperf-style: a
schema name and version, a loader that refuses versions it does not know): the command, status
and exit code, times, every metric with its spec and match counts, memory, errors, and the
environment. :class:`RunRecord` is its typed form (``to_dict`` / ``from_dict``).

Format history of ``bench-driver/run-record``:

* 1 (bench-driver 0.1.0): the first version.
* 2: ``plugin_errors``, ``storage_errors``, ``task_env`` (the variables set for the task); each
  metric also has ``pattern`` and ``error`` (why it is missing: overflow, a plugin failure...).
  Version 1 documents still load (the new fields empty). The ``environment`` block has its
  own ``environment_version`` (driver.environment); its ``warnings`` are the machine's noise.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol

from driver import __version__
from driver.errors import ConfigError, ExitCode, StorageError, exit_code_for_signal
from driver.records import Record
from driver.reduce import MetricResult

SCHEMA = "bench-driver/run-record"
SCHEMA_VERSION = 2
READS_VERSIONS = (1, 2)

#: Status of a run, in the record and the exit code.
Status = Literal["running", "ok", "failed", "missing_metrics", "timeout", "interrupted"]
RUNNING: Status = "running"
OK: Status = "ok"
FAILED: Status = "failed"  # the command exited non-zero or was killed by a signal
MISSING_METRICS: Status = "missing_metrics"
TIMEOUT: Status = "timeout"
INTERRUPTED: Status = "interrupted"
#: A run with one of these statuses has finished (a resumed set does not rerun it).
FINISHED: tuple[Status, ...] = (OK, FAILED, MISSING_METRICS, TIMEOUT)
#: Runs whose values enter statistics: the command itself succeeded.
MEASURED: tuple[Status, ...] = (OK, MISSING_METRICS)


class RunRecord(Record):
    """Everything known about one run of one task."""

    task: str
    command: str
    status: Status
    exit_code: int | None
    started_at: str
    ended_at: str
    duration_s: float
    run_dir: str
    metrics: tuple[MetricResult, ...] = ()
    memory: Mapping[str, Any] = {}
    resource_metrics: Mapping[str, float] = {}
    errors: tuple[str, ...] = ()
    params: Mapping[str, Any] = {}
    num_gpus: int = 0
    gpus: tuple[int, ...] = ()
    signal: str | None = None
    environment: Mapping[str, Any] = {}
    task_env: Mapping[str, str] = {}
    plugin_errors: tuple[str, ...] = ()
    storage_errors: tuple[str, ...] = ()

    @property
    def missing(self) -> list[str]:
        """Names of metrics that never matched (optional ones included)."""
        return [m.name for m in self.metrics if m.missing]

    @property
    def missing_required(self) -> list[str]:
        """Names of required metrics that never matched."""
        return [m.name for m in self.metrics if m.missing and not m.optional]

    @property
    def warnings(self) -> list[str]:
        """The machine's noise warnings for this run (driver.noise), [] when there were none."""
        from driver.noise import warnings_of

        return warnings_of(self.environment)

    @property
    def finished(self) -> bool:
        """Whether the run ended by itself (not interrupted, not still running)."""
        return self.status in FINISHED

    def values(self) -> dict[str, float]:
        """Each metric that has a value, then the sampled resource metrics (finite ones)."""
        found = {m.name: m.value for m in self.metrics if m.value is not None}
        found.update({k: v for k, v in self.resource_metrics.items()
                      if v is not None and math.isfinite(v)})
        return found

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready document (schema header first)."""
        body = self._asdict()
        body["metrics"] = {m.name: {k: v for k, v in m._asdict().items() if k != "name"}
                           for m in self.metrics}
        body["missing_metrics"] = self.missing
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **_finite(body)}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> RunRecord:
        """The record of a loaded document (version 1 or 2)."""
        known = set(cls._fields)
        body = {k: v for k, v in document.items() if k in known}
        metric_keys = set(MetricResult._fields)
        body["metrics"] = tuple(_metric(name, m, metric_keys)
                                for name, m in document.get("metrics", {}).items())
        for key in ("errors", "gpus", "plugin_errors", "storage_errors"):
            body[key] = tuple(body.get(key) or ())
        return cls(**body)

    def save(self, path: str | Path) -> None:
        """Write the record atomically (StorageError when it cannot be written)."""
        write_json_atomic(path, self.to_dict())

    def with_storage_error(self, error: StorageError) -> RunRecord:
        """The record noting a file it could not write."""
        return self._replace(storage_errors=self.storage_errors + (str(error),))


class Ended(Protocol):
    """What decides a run's exit code: a RunRecord, or a set's entry for one of its runs."""

    @property
    def status(self) -> str: ...
    @property
    def signal(self) -> str | None: ...
    @property
    def plugin_errors(self) -> tuple[str, ...]: ...
    @property
    def storage_errors(self) -> tuple[str, ...]: ...


def exit_code_for(record: Ended) -> ExitCode:
    """The documented exit code of a finished run: a signal first, then a plugin error, then a
    file that could not be written, then how the command ended (see driver.errors)."""
    if record.status == INTERRUPTED or record.signal:
        return exit_code_for_signal(record.signal or "SIGINT")
    if record.plugin_errors:
        return ExitCode.PLUGIN
    if record.storage_errors:
        return ExitCode.STORAGE
    codes: dict[str, ExitCode] = {OK: ExitCode.OK, TIMEOUT: ExitCode.TIMEOUT,
                                  FAILED: ExitCode.COMMAND_FAILED,
                                  MISSING_METRICS: ExitCode.MISSING_METRIC}
    return codes.get(record.status, ExitCode.INTERNAL)


def _metric(name: str, fields_: Mapping[str, Any], known: set[str]) -> MetricResult:
    body: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                            for k, v in fields_.items() if k in known}
    return MetricResult(name=name, **body)


def result_key(task: str, metric: str, framework: str | None = None,
               suffix: str | None = None) -> str:
    """A flat result key: ``[framework.]task.metric[.suffix]`` (the old driver's contract)."""
    prefix = f"{framework}.{task}" if framework else task
    return f"{prefix}.{metric}{'.' + suffix if suffix else ''}"


def flat_result(
    record: RunRecord, framework: str | None = None, suffix: str | None = None
) -> dict[str, float]:
    """The old driver's flat object: ``[framework.]task.metric[.suffix] -> number``."""
    return {result_key(record.task, name, framework, suffix): v
            for name, v in record.values().items()}


def write_json_atomic(path: str | Path, document: Any) -> None:
    """Write *document* as JSON (never NaN) to *path* atomically; see :func:`write_text_atomic`."""
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write *text* (UTF-8) to *path* atomically; see :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write *data* to *path* via a temporary file, fsync and rename: never half-written.

    A path that exists and is not a regular file (``/dev/stdout``, a FIFO) is written through,
    never replaced. Raises :class:`StorageError` (naming the file) when it cannot be written.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            with open(path, "wb") as f:  # a device or a FIFO
                f.write(data)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(path, data)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _replace_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    mode = path.stat().st_mode & 0o777 if path.is_file() else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_record(path: str | Path) -> RunRecord:
    """Read a run record (a file, or a run directory holding record.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "record.json"
    return RunRecord.from_dict(load_document(path, SCHEMA, READS_VERSIONS,
                                             "bench-driver run record"))


def load_document(path: str | Path, schema: str, versions: tuple[int, ...],
                  kind: str | None = None) -> dict[str, Any]:
    """Read a versioned JSON document (pyperf-style), refusing other schemas and the versions
    this bench-driver does not read. *kind* names it in messages (default: the schema)."""
    kind = kind or f"{schema!r} document"
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read {kind}: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != schema:
        raise ConfigError(f"{path}: not a {kind} (no \"schema\": {schema!r})")
    if document.get("schema_version") not in versions:
        raise ConfigError(
            f"{path}: {schema} schema_version {document.get('schema_version')!r} is not "
            f"supported (bench-driver {__version__} reads versions "
            f"{', '.join(map(str, versions))}); upgrade bench-driver"
        )
    return document


def environment(cwd: Path) -> dict[str, Any]:
    """The run's environment block (driver.environment, read while the task runs): host, driver
    version and the git commit of the working directory, then the machine's fields."""
    from driver import environment as machine

    return {"host": os.uname().nodename, "driver_version": __version__,  # socket's, cheaper
            "git_commit": _git_commit(cwd), **machine.collect(machine.system_root())}


def _git_commit(cwd: Path) -> str | None:
    """``git describe``'s full commit of *cwd*, with ``-dirty`` for uncommitted changes."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40", "--match=NO-TAGS-ONLY-SHA"],
            cwd=cwd, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _finite(value: Any) -> Any:
    """Replace non-finite floats by None so the document is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
