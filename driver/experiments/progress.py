"""The console while the runs of sets and experiments go: ``k/N runs, ETA``.

Two styles. *Compact* (experiments, unless ``--verbose``): one progress line, redrawn in place
on a terminal (rich); elsewhere (CI logs, a pipe) a plain line every tenth of the runs or so;
in both, a lasting line for each run that did not end ``ok``. The task's output and each run's
summary stay in the run's directory (``output.log``, ``record.json``). *Detailed* (``--jobs``
sets, ``--verbose``): one line per active run on a terminal, and each start and end as a plain
line elsewhere. The estimate is the mean duration of the runs that ended so far times the runs
left, divided by the runs at once.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from driver.results import RunRecord

#: A plain compact line at least every this fraction of the runs.
PLAIN_LINES = 10


class Progress:
    """What the scheduler tells the user: runs started and ended, and the overall count."""

    def __init__(self, total: int, jobs: int, stream: TextIO | None = None,
                 compact: bool = False) -> None:
        self.total, self.jobs, self.done, self.compact = total, jobs, 0, compact
        self.stream = stream or sys.stderr
        self.every = max(1, round(total / PLAIN_LINES))
        self._active: dict[str, tuple[str, float]] = {}  # key -> (label, started)
        self._durations: list[float] = []
        self._live: Any = None
        if self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self, console=Console(file=self.stream, highlight=False),
                              refresh_per_second=2, transient=True)
            self._live.start()
        elif compact and total:
            self._plain(self.overall())

    def started(self, key: str, label: str, where: str = "") -> None:
        """A run was submitted (*where*: its GPUs, when leased)."""
        self._active[key] = (f"{label}{f' on {where}' if where else ''}", time.monotonic())
        if self._live is not None:
            self._live.refresh()
        elif not self.compact:
            self._plain(f"[{self.overall()}] started {self._active[key][0]}")

    def ended(self, key: str, status: str, ok: bool = True) -> None:
        """A run ended with *status* (*ok*: it ended ``ok``)."""
        label, started = self._active.pop(key, (key, time.monotonic()))
        self.done += 1
        self._durations.append(time.monotonic() - started)
        event = f"{label}: {status} ({self._durations[-1]:.1f} s)"
        if self._live is not None:
            if not (self.compact and ok):
                self._live.console.print(f"bench-driver: {event}", markup=False,
                                         highlight=False)
            self._live.refresh()
        elif not self.compact or not ok:
            self._plain(f"[{self.overall()}] {event}")
        elif self.done % self.every == 0 or self.done == self.total:
            self._plain(self.overall())

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
        """The live lines (a terminal): compact, the count and the oldest active run on one
        line; else each active run with its time so far, then the count."""
        from rich.text import Text

        now = time.monotonic()
        active = [f"{label}  {now - started:.0f} s" for label, started in self._active.values()]
        if self.compact:
            more = f" (+{len(active) - 1} more)" if len(active) > 1 else ""
            running = f"  running: {active[0]}{more}" if active else ""
            return Text(f"bench-driver: {self.overall()}{running}", no_wrap=True,
                        overflow="ellipsis")
        return Text("\n".join([f"  {line}" for line in active] +
                              [f"bench-driver: {self.overall()}"]))

    def _plain(self, text: str) -> None:
        print(f"bench-driver: {text}", file=self.stream, flush=True)


def status_text(record: RunRecord) -> str:
    """``ok``, or the status and the last error (``failed: exit code 3``)."""
    from driver import results

    why = f": {record.errors[-1]}" if record.status != results.OK and record.errors else ""
    return f"{record.status}{why}"
