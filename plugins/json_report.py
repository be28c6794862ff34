"""Writes the old driver's flat result object (``dlbenchmark_result.json`` by default).

``[framework.]task.metric[.suffix] -> number``, written atomically; never NaN. It owns
``--output``, ``--framework`` and ``--metrics-suffix``. A single run or a set writes ``--output``;
each run of a set writes ``result.json`` in its run directory, and each variant of an experiment
``result.json`` in its directory (an experiment never touches ``--output``).

``--output`` is checked before anything runs: a directory, or an existing file that is not a
previous flat result (a JSON object of numbers), is refused; a device or a FIFO is written through,
never replaced; a symbolic link is followed. The previous flat result is removed when the first
command starts, so that a run that dies never leaves an earlier run's values looking like its own.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver.errors import ConfigError
from driver.hookspecs import hookimpl
from driver.paths import check_writable
from driver.report import Reporter, ReportSettings
from driver.results import RunRecord, flat_result, write_json_atomic

if TYPE_CHECKING:
    from driver.config import TaskConfig
    from driver.experiments.summary import SetSummary

DEFAULT_OUTPUT = Path("dlbenchmark_result.json")


class JsonReporter(Reporter):
    """The flat result of a run, a set, and each experiment variant."""

    def begin(self, settings: ReportSettings) -> None:
        output = _output(settings)
        if settings.option("experiment") is None and output.is_file():
            output.unlink()  # checked by bench_driver_configure: a previous flat result

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        path = Path(record.run_dir) / "result.json" if settings.in_set else _output(settings)
        write_json_atomic(path, flat_result(record, *_key_parts(settings)))

    def report_set(self, summary: SetSummary, settings: ReportSettings) -> None:
        path = Path(summary.directory) / "result.json" if summary.experiment else \
            _output(settings)
        write_json_atomic(path, summary.flat(*_key_parts(settings)))


def _output(settings: ReportSettings) -> Path:
    return _target(Path(settings.option("output", DEFAULT_OUTPUT)))


def _target(path: Path) -> Path:
    """The file a symbolic link names (written in place, the link kept), else *path*."""
    if not path.is_symlink():
        return path
    real = Path(os.path.realpath(path))
    return real if real.exists() or real.parent.is_dir() else path  # /dev/stdout: keep it


def _key_parts(settings: ReportSettings) -> tuple[str | None, str | None]:
    return settings.option("framework") or settings.framework, settings.option("metrics_suffix")


def check_output(path: Path) -> None:
    """ConfigError for an output that must not be written over (see the module docstring)."""
    real = _target(Path(path))
    if real.exists() and not real.is_file() and not real.is_dir():
        return  # a device or a FIFO: written through
    check_writable(real, "--output")
    if real.is_file() and not _is_flat_result(real):
        raise ConfigError(
            f"--output {str(path)!r}: this file exists and is not a previous flat result (a JSON "
            f"object of numbers); refusing to replace it. Give another --output, or remove it")


def _is_flat_result(path: Path) -> bool:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in document.values())


@hookimpl
def bench_driver_addoption(command: str, parser: argparse.ArgumentParser) -> None:
    if command != "run":
        return
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="flat JSON result (default: ./dlbenchmark_result.json)")
    parser.add_argument("--framework", help="result keys become FRAMEWORK.task.metric")
    parser.add_argument("--metrics-suffix", help="result keys become task.metric.SUFFIX")


@hookimpl
def bench_driver_configure(options: argparse.Namespace, config: TaskConfig | None) -> None:
    output = getattr(options, "output", None)
    if output is not None and getattr(options, "experiment", None) is None:
        check_output(output)


@hookimpl
def bench_driver_register_reporters() -> dict[str, Any]:
    return {"json": JsonReporter()}
