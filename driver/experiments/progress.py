"""The console while runs go in parallel: one line per active run, and ``k/N runs, ETA``.

On a terminal the lines are redrawn in place (rich); elsewhere (CI logs, a pipe) each start and
each end is one plain line on standard error. The estimate is the mean duration of the runs that
ended so far times the runs left, divided by the runs at once.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """What the scheduler tells the user: runs started and ended, and the overall count."""

    def __init__(self, total: int, jobs: int, stream: TextIO | None = None) -> None:
        self.total, self.jobs, self.done = total, jobs, 0
        self.stream = stream or sys.stderr
        self._active: dict[str, tuple[str, float]] = {}  # key -> (label, started)
        self._durations: list[float] = []
        self._live: Any = None
        if self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self, console=Console(file=self.stream, highlight=False),
                              refresh_per_second=2, transient=True)
            self._live.start()

    def started(self, key: str, label: str, where: str = "") -> None:
        """A run was submitted (*where*: its GPUs, when leased)."""
        self._active[key] = (f"{label}{f' on {where}' if where else ''}", time.monotonic())
        self._say(f"started {self._active[key][0]}")

    def ended(self, key: str, status: str) -> None:
        """A run ended with *status*."""
        label, started = self._active.pop(key, (key, time.monotonic()))
        self.done += 1
        self._durations.append(time.monotonic() - started)
        self._say(f"{label}: {status} ({self._durations[-1]:.1f} s)", lasting=True)

    def overall(self) -> str:
        """``k/N runs, ETA 12 s`` (no ETA before the first run ends)."""
        left = self.total - self.done
        if not self._durations or left == 0:
            return f"{self.done}/{self.total} runs"
        mean = sum(self._durations) / len(self._durations)
        return f"{self.done}/{self.total} runs, ETA {mean * left / self.jobs:.0f} s"

    def close(self) -> None:
        """Remove the live lines (a terminal)."""
        if self._live is not None:
            self._live.stop()

    def __rich__(self) -> Any:
        """The live lines (a terminal): each active run with its time so far, then the count."""
        from rich.text import Text

        now = time.monotonic()
        lines = [f"  {label}  {now - started:.0f} s" for label, started in self._active.values()]
        return Text("\n".join(lines + [f"bench-driver: {self.overall()}"]))

    def _say(self, event: str, lasting: bool = False) -> None:
        if self._live is None:
            print(f"bench-driver: [{self.overall()}] {event}", file=self.stream, flush=True)
        elif lasting:
            self._live.console.print(f"bench-driver: {event}", markup=False)
        else:
            self._live.refresh()
