"""Results: the old flat JSON object and the versioned run record, both written atomically.

The flat result (``dlbenchmark_result.json``) keeps the old driver's contract: one object, keys
``[framework.]task.metric[.suffix]``, values numbers. Metrics that were not found are left out
(never NaN) and named in the record and on the console.

The run record (``record.json`` in the run directory) is a versioned document: schema name and
version, the command, status and exit code, times, every metric with its match counts, memory,
errors, and the environment. :func:`load_record` refuses a schema version it does not know.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from driver import __version__
from driver.errors import ConfigError
from driver.reduce import MetricResult

SCHEMA = "bench-driver/run-record"
SCHEMA_VERSION = 1

#: Status of a run, in the record and the exit code.
OK = "ok"
FAILED = "failed"  # the command exited non-zero or was killed by a signal
MISSING_METRICS = "missing_metrics"
TIMEOUT = "timeout"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunRecord:
    """Everything known about one run of one task."""

    task: str
    command: str
    status: str
    exit_code: int | None
    started_at: str
    ended_at: str
    duration_s: float
    run_dir: str
    metrics: tuple[MetricResult, ...] = ()
    memory: Mapping[str, Any] = field(default_factory=dict)
    resource_metrics: Mapping[str, float] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    num_gpus: int = 0
    gpus: tuple[int, ...] = ()
    signal: str | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        """Names of metrics that never matched (optional ones included)."""
        return [m.name for m in self.metrics if m.missing]

    @property
    def missing_required(self) -> list[str]:
        """Names of required metrics that never matched."""
        return [m.name for m in self.metrics if m.missing and not m.optional]

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready document (schema header first)."""
        body = asdict(self)
        body["metrics"] = {m.name: {k: v for k, v in asdict(m).items() if k != "name"}
                           for m in self.metrics}
        body["missing_metrics"] = self.missing
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **_finite(body)}


def flat_result(
    record: RunRecord, framework: str | None = None, suffix: str | None = None
) -> dict[str, float]:
    """The old driver's flat object: ``[framework.]task.metric[.suffix] -> number``."""
    values: dict[str, float] = {m.name: m.value for m in record.metrics if m.value is not None}
    values.update({k: v for k, v in record.resource_metrics.items() if math.isfinite(v)})
    prefix = f"{framework}.{record.task}" if framework else record.task
    return {f"{prefix}.{name}{'.' + suffix if suffix else ''}": v for name, v in values.items()}


def write_json_atomic(path: str | Path, document: Any) -> None:
    """Write *document* as JSON (never NaN) to *path* atomically; see :func:`write_text_atomic`."""
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write *text* to *path* via a temporary file, fsync and rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_record(path: str | Path) -> dict[str, Any]:
    """Read a run record (a file, or a run directory holding record.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "record.json"
    return load_document(path, SCHEMA, "bench-driver run record")


def load_document(path: str | Path, schema: str, kind: str | None = None) -> dict[str, Any]:
    """Read a versioned JSON document (pyperf-style), refusing other schemas and versions this
    bench-driver does not know. *kind* names it in messages (default: the schema)."""
    kind = kind or f"{schema!r} document"
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read {kind}: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != schema:
        raise ConfigError(f"{path}: not a {kind} (no \"schema\": {schema!r})")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: {schema} schema_version {document.get('schema_version')!r} is not "
            f"supported (bench-driver {__version__} reads version {SCHEMA_VERSION}); "
            f"upgrade bench-driver"
        )
    return document


def environment(cwd: Path) -> dict[str, Any]:
    """Host, CPU, Python, driver version and the git commit of the working directory."""
    import platform
    import socket

    return {
        "host": socket.gethostname(),
        "platform": f"{platform.system()}-{platform.release()}-{platform.machine()}",
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "driver_version": __version__,
        "git_commit": _git_commit(cwd),
    }


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
