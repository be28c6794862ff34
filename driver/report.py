"""The reporter interface: plugins that present a finished run (JSON file, console, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from driver.results import RunRecord


@dataclass(frozen=True)
class ReportSettings:
    """Command-line choices reporters need."""

    output: Path = Path("dlbenchmark_result.json")
    framework: str | None = None
    metrics_suffix: str | None = None
    stream: TextIO | None = None  # where console reporters write (stderr by default)
    plot: str = "auto"  # timeline.png: "auto" (long runs), "always" or "never"


class Reporter(Protocol):
    """Anything with ``report(record, settings)``; called once per finished run."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        """Present *record*. Exceptions are reported as plugin errors, never lose the record."""
