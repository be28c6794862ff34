"""Run one command: its own session, output through a pipe, timeouts, signals, a reaped tree.

Nothing the command, the patterns or the console do may stall the control of a run, so the work
is split among threads and helper processes, each of which can only stall itself:

* the *pump* thread moves the pipe into the run's log file (driver.output);
* the *echo* thread copies the log to the console, skipping what a slow console cannot take
  (driver.output);
* the scraper runs in its own *process*: it follows the log and sends values back, so that a
  regex holding the GIL stalls nothing but itself (driver.scrape_process);
* the *watchdog* process kills the tree if the driver itself dies (driver.watchdog); neither
  helper is a fork of the driver, nor part of the task's tree;
* the *waiter* thread blocks in ``os.wait4`` for the command, then ends what it left running;
* the *sampling* thread polls the tree (driver.sampling);
* the calling thread is the control loop. It sleeps in ``select`` on one wake-up pipe (rung by
  the pump, the waiter, the echo and every signal) and on the scraper's results; it enforces the
  timeout, forwards signals to the tree, and SIGKILLs it after the grace period.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from driver import proctree
from driver.errors import ConfigError
from driver.output import (ECHO_FINISH_S, ECHO_OFF, ECHO_PLAIN, Echo, Pump, console_fd,
                           widen_pipe)
from driver.records import Record
from driver.sampling import RunExit, Sampler, SamplingThread
from driver.scrape import Scraper
from driver.scrape_process import ScrapeEnd, ScrapeProcess
from driver.supervisor import Supervisor
from driver.watchdog import TOKEN_ENV, Watchdog

DEFAULT_KILL_GRACE_S = 5.0
POLL_S = 0.1  # the control loop's longest sleep: the timeout acts within this
SCRAPE_STALL_S = 5.0  # CPU s a scraper may spend with work and no news before it is replaced
SCRAPE_FINISH_S = 1.0  # after a stop (timeout, signal) and the tree's end: the scraper's last call
STOPPING_STALL_S = 0.25  # ... in which a scraper is stuck after this much CPU time without news
ECHO_GIVE_UP_S = 0.25  # a console still stuck this long after its catch-up time is left behind


class RunRequest(Record):
    """One command to run and where its output goes."""

    command: str
    cwd: Path
    log_path: Path
    env: Mapping[str, str] = {}
    timeout_s: float | None = None
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    echo: str = ECHO_PLAIN
    timeline_path: Path | None = None
    sample_interval_s: float = 0.1


class RunOutcome(Record):
    """How the command ended, and the kernel's accounting of its tree."""

    exit_code: int | None  # negative: killed by that signal number; None: never started
    started_at: str
    ended_at: str
    duration_s: float
    timed_out: bool
    interrupted_by: str | None  # the signal's name ("SIGINT", "SIGHUP"...) that stopped the run
    exit: RunExit
    leftovers_killed: int
    sampler_errors: tuple[str, ...]
    sampler_cost_s: float
    scrape: ScrapeEnd = ScrapeEnd(0, 0)
    console_skipped_bytes: int = 0  # output the console never got (output.log has it all)
    notes: tuple[str, ...] = ()  # why the scraped values are incomplete, for the record
    storage_errors: tuple[str, ...] = ()  # output.log or timeline.csv could not be written


class StopRequests:
    """Signals that ask the driver to stop: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2.

    Install it around the whole run, until the record and the flat result are written
    (:meth:`installed`), and hand it to :func:`run_command`. The handler only records the
    signal: a late one never interrupts a write, and the control loop forwards each to the whole
    tree. (A handler that signalled the tree itself could interrupt the loop while it holds the
    supervisor's lock, and deadlock.) ``received`` is the first signal's name.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._pending: list[int] = []

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = self.received or signal.Signals(signum).name
        self._pending.append(signum)

    def take(self) -> int | None:
        """The oldest signal not yet forwarded, if any."""
        return self._pending.pop(0) if self._pending else None

    @contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Handle the stop signals for the duration (on the main thread; elsewhere, nothing)."""
        previous: dict[int, Any] = {}
        try:
            if threading.current_thread() is threading.main_thread():
                for sig in proctree.STOP_SIGNALS:
                    previous[sig] = signal.signal(sig, self._handle)
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_command(request: RunRequest, scraper: Scraper, samplers: Sequence[Sampler],
                stop: StopRequests | None = None) -> RunOutcome:
    """Run *request*, feeding its output to *scraper* while *samplers* poll its tree.

    *stop* is the caller's :class:`StopRequests`, installed around the whole run; without one,
    run_command installs its own for its duration. A signal received before the command started
    means it is not started. Whatever happens in the driver meanwhile (an error, a signal), the
    command's whole tree is ended before this returns or raises.
    """
    if stop is None:
        with StopRequests().installed() as own:
            return run_command(request, scraper, samplers, own)
    proctree.use_psutil()  # a bad BENCH_DRIVER_PROCESS_READER is refused before the command starts
    proctree.become_subreaper()
    proctree.reap_helpers()
    run = _Run(request, stop)
    if stop.received is None:
        with ExitStack() as cleanup:
            try:
                run.start(scraper, samplers, cleanup)
                run.drive()
            except BaseException:
                run.abort()
                raise
            finally:
                run.close(cleanup)
    return run.outcome()


class _Run:
    """One run's parts, started in order (the helper processes first: they are forked before any
    thread), driven by the control loop, and released in reverse order."""

    def __init__(self, request: RunRequest, stop: StopRequests) -> None:
        self.request, self.stop = request, stop
        self.floor_kib = proctree.own_hwm_kib()
        self.started_at, self.t0 = utc_now(), time.monotonic()
        self.deadline = None if request.timeout_s is None else self.t0 + request.timeout_s
        self.timed_out = False
        self.exit_code: int | None = None
        self.stopped_at: float | None = None  # when the timeout or a signal ended the run
        self.output_ended_at: float | None = None
        self.scrape_end = ScrapeEnd(0, 0)
        self.console_skipped = 0
        self.supervisor: Supervisor | None = None
        self.waiter: threading.Thread | None = None
        self.pump: Pump | None = None
        self.echo: Echo | None = None
        self.sampling: SamplingThread | None = None
        self.metric_names: list[str] = []

    def start(self, scraper: Scraper, samplers: Sequence[Sampler], cleanup: ExitStack) -> None:
        """Start every part; *cleanup* releases each one, even if a later one fails."""
        self.metric_names = [m.name for m in scraper.metrics]
        self.log = cleanup.enter_context(_LogFiles(self.request.log_path))
        token = self._start_helpers(scraper, cleanup)
        self.wakeup = cleanup.enter_context(_Wakeup())
        proc = _spawn(self.request, {TOKEN_ENV: token})
        assert proc.stdout is not None
        cleanup.callback(proc.stdout.close)
        self.watchdog.tell([proc.pid])
        self.supervisor = Supervisor(proc.pid, self.request.kill_grace_s, self.pids)
        self.waiter = threading.Thread(target=self._wait, args=(proc, self.supervisor),
                                       daemon=True)
        self.waiter.start()
        self.sampling = SamplingThread(samplers, self.request.sample_interval_s,
                                       self.request.timeline_path, self.pids,
                                       on_tick=self.supervisor.reap_orphans)
        cleanup.callback(self.sampling.stop)
        self.sampling.start()
        self._start_output(proc.stdout.fileno())

    def _start_helpers(self, scraper: Scraper, cleanup: ExitStack) -> str:
        """Start the watchdog; set up the scraper's process (it starts with the first output).
        Return the run's token."""
        token = f"{os.getpid()}.{time.time_ns()}"
        self.watchdog = Watchdog.start(token)
        cleanup.callback(self.watchdog.release)
        self.scrape = ScrapeProcess(scraper, self.log.read_fd,
                                    on_new_child=self.watchdog.tell_helper)
        cleanup.callback(self.scrape.close)
        return token

    def _start_output(self, pipe_fd: int) -> None:
        widen_pipe(pipe_fd)
        self.pump = Pump(pipe_fd, self.log.write_fd, self.scrape.wake, self.wakeup.ring)
        out_fd = console_fd() if self.request.echo != ECHO_OFF else None
        if out_fd is not None:
            widen_pipe(out_fd)  # a console that is a pipe (`| tee`, CI): fewer hand-offs too
            self.echo = Echo(self.request.echo, self.t0, self.log.read_fd, self.pump, out_fd,
                             on_done=self.wakeup.ring)
        self.pump.start()
        if self.echo is not None:
            self.echo.start()

    def pids(self) -> list[int]:
        """The task's processes now (the watchdog learns each one as it is seen)."""
        pids = proctree.task_tree()
        self.watchdog.tell(pids)
        return pids

    def _wait(self, proc: subprocess.Popen[bytes], supervisor: Supervisor) -> None:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)  # Popen never waits on it again
            self.exit_code = proc.returncode
            supervisor.exit_maxrss_kib = proctree.maxrss_kib(usage.ru_maxrss)
            supervisor.end_leftovers()
        finally:
            self.wakeup.ring()

    def drive(self) -> None:
        """The control loop: until the tree is reaped, the output ended and was scraped, and the
        console got it (or was given up on), forward signals and enforce the timeout."""
        assert self.supervisor is not None
        while not self._over():
            results = self.scrape.fd
            self.wakeup.wait(POLL_S, [] if self.scrape.finished or results < 0 else [results])
            self.scrape.collect()
            while (sig := self.stop.take()) is not None:
                self._end_tree(sig)
            if self.deadline is not None and not self.timed_out and \
                    time.monotonic() > self.deadline:
                self.timed_out = True
                self._end_tree(signal.SIGTERM)
            self.supervisor.tick()
            self._follow_output()

    def _end_tree(self, sig: int) -> None:
        assert self.supervisor is not None
        self.stopped_at = self.stopped_at or time.monotonic()
        self.supervisor.terminate(sig)

    def _follow_output(self) -> None:
        assert self.pump is not None and self.waiter is not None
        if self.pump.done and self.output_ended_at is None:
            self.output_ended_at = time.monotonic()
            self.scrape.end_of_output()
            if self.echo is not None:
                self.echo.finish()
            if self.pump.error:  # the log cannot be written: stop the benchmark
                self._end_tree(signal.SIGTERM)
        tree_gone = self.output_ended_at is not None and not self.waiter.is_alive()
        if self.stopped_at is None or not tree_gone:
            self.scrape.check(SCRAPE_STALL_S)
            return
        self.scrape.check(STOPPING_STALL_S)
        assert self.output_ended_at is not None
        if time.monotonic() > max(self.output_ended_at, self.stopped_at) + SCRAPE_FINISH_S:
            why = "the timeout" if self.timed_out else self.stop.received
            self.scrape.stop(f"{why} ended the run before scraping finished")

    def _over(self) -> bool:
        assert self.waiter is not None
        if self.output_ended_at is None or self.waiter.is_alive() or not self.scrape.finished:
            return False
        if self.echo is None or self.echo.finished.is_set():
            return True
        return time.monotonic() > self.output_ended_at + ECHO_FINISH_S + ECHO_GIVE_UP_S

    def abort(self) -> None:
        """The driver itself failed (or was interrupted) mid-run: end the whole tree now."""
        if self.supervisor is not None:
            self.supervisor.abort(self.waiter)

    def close(self, cleanup: ExitStack) -> None:
        """Collect the last results, then release every part (reverse order of start)."""
        if self.pump is not None:
            self.pump.join(self.request.kill_grace_s + 5.0)
        if hasattr(self, "scrape"):
            self.scrape.stop("the driver stopped before scraping finished")
            self.scrape_end = self.scrape.end()
        if self.echo is not None:
            self.echo.finish(0.0)
            self.console_skipped = self.echo.missed(self.pump.written if self.pump else 0)
        self.interrupted_by = self.stop.received
        cleanup.close()

    def outcome(self) -> RunOutcome:
        """What the run did (a run never started has no exit code and no tree)."""
        supervisor, sampling = self.supervisor, self.sampling
        maxrss = (supervisor.exit_maxrss_kib, *supervisor.maxrss_kib) if supervisor else ()
        errors = list(sampling.errors) if sampling else []
        storage = [sampling.timeline_error] if sampling and sampling.timeline_error else []
        if self.pump is not None and self.pump.error:
            (storage if self.pump.log_full else errors).append(self.pump.error)
        return RunOutcome(
            exit_code=self.exit_code, started_at=self.started_at, ended_at=utc_now(),
            duration_s=round(time.monotonic() - self.t0, 6), timed_out=self.timed_out,
            interrupted_by=getattr(self, "interrupted_by", self.stop.received),
            exit=RunExit(maxrss, self.floor_kib),
            leftovers_killed=supervisor.leftovers_killed if supervisor else 0,
            sampler_errors=tuple(errors), sampler_cost_s=sampling.busy_s if sampling else 0.0,
            scrape=self.scrape_end, console_skipped_bytes=self.console_skipped,
            notes=tuple(self.scrape_end.notes(self.metric_names)),
            storage_errors=tuple(storage),
        )


def _spawn(request: RunRequest, marks: Mapping[str, str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            ["/bin/sh", "-c", request.command],
            cwd=request.cwd,
            env={**os.environ, **request.env, **marks},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and group; no preexec_fn: the fast path
            bufsize=0,
        )
    except OSError as exc:
        raise ConfigError(f"cannot start the command in {str(request.cwd)!r}: {exc}") from None


class _Wakeup:
    """The control loop's alarm: a pipe that threads and signal handlers write one byte to."""

    def __enter__(self) -> _Wakeup:
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._previous: int | None = None
        self._lock = threading.Lock()  # an echo thread may ring after the run: never a reused fd
        if threading.current_thread() is threading.main_thread():  # signals ring it too
            self._previous = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        return self

    def ring(self) -> None:
        """Wake the control loop (from any thread)."""
        with self._lock:
            if self._write_fd < 0:
                return
            try:
                os.write(self._write_fd, b"!")
            except BlockingIOError:
                pass  # already rung

    def wait(self, timeout_s: float, others: list[int]) -> None:
        """Sleep until rung, until one of *others* is readable, or *timeout_s*."""
        ready, _, _ = select.select([self.fd] + others, [], [], timeout_s)
        if self.fd in ready:
            os.read(self.fd, 1 << 12)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.set_wakeup_fd(self._previous)
        with self._lock:
            os.close(self.fd)
            os.close(self._write_fd)
            self._write_fd = -1


class _LogFiles:
    """The run's log, open for the pump (writing) and the echo and scraper (reading back)."""

    def __init__(self, path: Path) -> None:
        self.write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.read_fd = os.open(path, os.O_RDONLY)

    def __enter__(self) -> _LogFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.write_fd)
        os.close(self.read_fd)


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds (``2026-12-02T04:15:46.123+00:00``, as
    ``datetime.isoformat(timespec="milliseconds")``; the time module spares the datetime import)."""
    seconds, ns = divmod(time.time_ns(), 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{ns // 1_000_000:03d}+00:00"
