"""Run one command: its own session, output through a pipe, timeouts, signals, a reaped tree.

Three threads share the work so that draining the pipe never waits on the regex engine:

* the *pump* moves the pipe into the run's log file (``splice``: in the kernel) as fast as the
  command writes, so the command is never slowed by the driver;
* the *waiter* blocks in ``os.wait4`` for the command and, once it has exited, ends whatever is
  left of its tree (first the signal, then SIGKILL after the grace period);
* the calling (main) thread reads the log back as it grows (from the page cache), echoes it to
  the console and feeds the scraper; it enforces the timeout and handles SIGINT and SIGTERM:
  both are forwarded to the whole tree, which is then reaped.

The output path (pump, log reader, echo) is in driver.output; the sampling thread (driver.sampling)
runs beside them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from driver import proctree
from driver.output import ECHO_PLAIN, Echo, LogReader, Pump, widen_pipe
from driver.sampling import RunExit, Sampler, SamplingThread, task_pids
from driver.scrape import Scraper

DEFAULT_KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class RunRequest:
    """One command to run and where its output goes."""

    command: str
    cwd: Path
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    echo: str = ECHO_PLAIN
    timeline_path: Path | None = None
    sample_interval_s: float = 0.1


@dataclass(frozen=True)
class RunOutcome:
    """How the command ended, and the kernel's accounting of its tree."""

    exit_code: int | None  # negative: killed by that signal number
    started_at: str
    ended_at: str
    duration_s: float
    timed_out: bool
    interrupted_by: str | None  # "SIGINT" / "SIGTERM" when the driver was told to stop
    exit: RunExit
    leftovers_killed: int
    sampler_errors: tuple[str, ...]
    sampler_cost_s: float


class _Supervisor:
    """Knows the command's process group and ends the tree: signal first, SIGKILL after grace."""

    def __init__(self, pid: int, grace_s: float) -> None:
        self.pid = pid
        self.grace_s = grace_s
        self.kill_at: float | None = None
        self.maxrss_kib: list[int] = []
        self.leftovers_killed = 0
        self._lock = threading.Lock()

    def terminate(self, sig: int) -> None:
        """Send *sig* to the whole tree now; SIGKILL it after the grace period (see :meth:`tick`)."""
        with self._lock:
            proctree.signal_tree(self.pid, task_pids(), sig)
            if self.kill_at is None:
                self.kill_at = time.monotonic() + self.grace_s

    def tick(self) -> None:
        """SIGKILL the tree once the grace period is over."""
        if self.kill_at is not None and time.monotonic() >= self.kill_at:
            proctree.signal_tree(self.pid, task_pids(), proctree.SIGKILL)

    def end_leftovers(self) -> None:
        """After the command exited: end what it left running (daemons, double forks)."""
        left = _running_pids()
        if not left:
            return
        self.leftovers_killed = len(left)
        proctree.signal_tree(self.pid, left, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            self.reap_orphans()
            if not _running_pids():
                return
            time.sleep(0.02)
        proctree.signal_tree(self.pid, task_pids(), proctree.SIGKILL)
        self.wait_gone(5.0)

    def wait_gone(self, limit_s: float) -> None:
        """Reap until no process of the tree is left (SIGKILLed ones die at once), or *limit_s*."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            self.reap_orphans()
            if not [p for p in task_pids() if p != self.pid]:
                return
            time.sleep(0.01)

    def abort(self, waiter: threading.Thread) -> None:
        """The driver itself failed mid-run: end the whole tree (never orphan the workload)."""
        self.terminate(signal.SIGTERM)
        waiter.join(self.grace_s)
        if waiter.is_alive():
            proctree.signal_tree(self.pid, task_pids(), proctree.SIGKILL)
            waiter.join(5.0)
        self.wait_gone(5.0)

    def reap_orphans(self) -> None:
        """Reap exited orphans re-parented to the driver, keeping their exact peak RSS."""
        for pid in proctree.children(os.getpid()):
            if pid != self.pid and proctree.is_zombie(pid):
                try:
                    reaped, _, usage = os.wait4(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if reaped:
                    self.maxrss_kib.append(int(usage.ru_maxrss))


def run_command(request: RunRequest, scraper: Scraper, samplers: Sequence[Sampler]) -> RunOutcome:
    """Run *request*, feeding its output to *scraper* while *samplers* poll its tree.

    Whatever happens in the driver meanwhile (an error, Ctrl-C during start-up), the command's
    whole tree is ended before this returns or raises.
    """
    proctree.become_subreaper()
    spawn_floor_kib = proctree.own_hwm_kib()
    started_at = utc_now()
    t0 = time.monotonic()
    stop = _StopRequests()
    with stop.installed(), _LogFiles(request.log_path) as log:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", request.command],
            cwd=request.cwd,
            env={**os.environ, **request.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            bufsize=0,
        )
        assert proc.stdout is not None
        supervisor = _Supervisor(proc.pid, request.kill_grace_s)
        waited: dict[str, Any] = {}
        waiter = threading.Thread(target=_wait, args=(proc, supervisor, waited), daemon=True)
        waiter.start()
        sampling = SamplingThread(samplers, request.sample_interval_s, request.timeline_path,
                                  task_pids, on_tick=supervisor.reap_orphans)
        pump = Pump(proc.stdout.fileno(), log.write_fd)
        try:
            widen_pipe(proc.stdout.fileno())
            sampling.start()
            pump.start()
            reader = LogReader(log.read_fd, scraper, Echo(request.echo, t0))
            timed_out = _drive(request, pump, reader, supervisor, waiter, stop, t0)
            pump.join()
        except BaseException:
            supervisor.abort(waiter)
            raise
        finally:
            sampling.stop()
            proc.stdout.close()
    supervisor.reap_orphans()
    duration = time.monotonic() - t0
    errors = list(sampling.errors) + ([pump.error] if pump.error else [])
    return RunOutcome(
        exit_code=waited.get("exit_code"),
        started_at=started_at,
        ended_at=utc_now(),
        duration_s=round(duration, 6),
        timed_out=timed_out,
        interrupted_by=stop.received,
        exit=RunExit(tuple([waited.get("maxrss_kib", 0)] + supervisor.maxrss_kib),
                     spawn_floor_kib),
        leftovers_killed=supervisor.leftovers_killed,
        sampler_errors=tuple(errors),
        sampler_cost_s=sampling.busy_s,
    )


def _running_pids() -> list[int]:
    """The task's processes that have not exited yet."""
    return [p for p in task_pids() if not proctree.is_zombie(p)]


class _LogFiles:
    """The run's log, open for the pump (writing) and the reader (reading back)."""

    def __init__(self, path: Path) -> None:
        self.write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.read_fd = os.open(path, os.O_RDONLY)

    def __enter__(self) -> _LogFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.write_fd)
        os.close(self.read_fd)


class _StopRequests:
    """SIGINT and SIGTERM to the driver while a command runs, installed before it starts.

    The handler only records the signal; the driving loop forwards it to the tree. (A handler
    that signalled the tree itself could interrupt the loop while it holds the supervisor's
    lock, and deadlock.)
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._pending: list[int] = []

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum).name
        self._pending.append(signum)

    def take(self) -> int | None:
        """The oldest signal not yet forwarded, if any."""
        return self._pending.pop(0) if self._pending else None

    @contextmanager
    def installed(self) -> Iterator[_StopRequests]:
        previous = _install(self._handle)
        try:
            yield self
        finally:
            _restore(previous)


def _wait(proc: subprocess.Popen[bytes], supervisor: _Supervisor, out: dict[str, Any]) -> None:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits on it again
    out["exit_code"] = proc.returncode
    out["maxrss_kib"] = int(usage.ru_maxrss)
    supervisor.end_leftovers()


def _drive(
    request: RunRequest,
    pump: Pump,
    reader: LogReader,
    supervisor: _Supervisor,
    waiter: threading.Thread,
    stop: _StopRequests,
    t0: float,
) -> bool:
    """Scrape the log as it grows until the output ends *and* the command has exited, enforcing
    the timeout and forwarding signals the whole time (a command may close its output early and
    keep running). Returns whether the timeout ended the run."""
    timed_out = False
    read_all = False
    deadline = None if request.timeout_s is None else t0 + request.timeout_s
    while not (read_all and not waiter.is_alive()):
        if read_all:
            waiter.join(0.1)
        else:
            written, read_all = pump.wait(reader.seen, 0.1)
            reader.finish(written) if read_all else reader.catch_up(written)
            if read_all and pump.error:  # the log cannot be written: stop the benchmark
                supervisor.terminate(signal.SIGTERM)
        while (sig := stop.take()) is not None:
            supervisor.terminate(sig)
        if deadline is not None and not timed_out and time.monotonic() > deadline:
            timed_out = True
            supervisor.terminate(signal.SIGTERM)
        supervisor.tick()
    return timed_out


def _install(handler: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
