"""The local backend: each run in a ``python -m driver.worker`` subprocess on this machine.

A worker is started in a session of its own (Ctrl-C reaches the driver, which passes the stop on
to every worker), with the job pickled on its standard input and its own messages in
``worker.log`` of the run directory. It inherits the read end of a pipe whose write end only the
driver holds: a driver that dies (SIGKILL included) makes every worker stop and record its run
interrupted. It also inherits the experiment lock (:class:`~driver.backends.Placement`), so that
the experiment stays locked until the last worker has ended.
"""

from __future__ import annotations

import argparse
import os
import pickle
import selectors
import signal
import subprocess
import sys
from pathlib import Path

from driver.backends import Backend, Finished, Placement, RunJob, log_tail
from driver.worker import PARENT_FD_ENV

WORKER_LOG = "worker.log"


class LocalBackend(Backend):
    """Worker subprocesses on this machine; the driver leases the GPUs."""

    def __init__(self, options: argparse.Namespace, jobs: int) -> None:
        self.jobs = jobs
        self._live: dict[int, tuple[RunJob, subprocess.Popen[bytes]]] = {}  # pidfd -> job
        self._selector = selectors.DefaultSelector()
        self._parent_read, self._parent_write = os.pipe()  # both close-on-exec

    def submit(self, job: RunJob, placement: Placement) -> None:
        run_dir = Path(str(job.options.run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, PARENT_FD_ENV: str(self._parent_read),
               "CUDA_VISIBLE_DEVICES": ",".join(placement.devices)}  # the pool of its lease
        with open(run_dir / WORKER_LOG, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "driver.worker"], stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, cwd=job.cwd, env=env, start_new_session=True,
                pass_fds=(self._parent_read, *placement.keep_fds))
        assert proc.stdin is not None
        try:
            proc.stdin.write(pickle.dumps(job))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: next_finished reports it with its log
        pidfd = os.pidfd_open(proc.pid)
        self._selector.register(pidfd, selectors.EVENT_READ)
        self._live[pidfd] = (job, proc)

    def next_finished(self, timeout_s: float) -> Finished | None:
        if not self._live:
            return None
        events = self._selector.select(timeout_s)
        if not events:
            return None
        pidfd = events[0][0].fd
        job, proc = self._live.pop(pidfd)
        self._selector.unregister(pidfd)
        os.close(pidfd)
        return _finished(job, proc.wait())

    def cancel(self, signal_name: str) -> None:
        for _, proc in self._live.values():
            try:
                proc.send_signal(signal.Signals[signal_name])
            except ProcessLookupError:
                pass  # ended meanwhile: next_finished reports it

    def close(self) -> None:
        self._selector.close()
        os.close(self._parent_write)
        os.close(self._parent_read)


def _finished(job: RunJob, returncode: int) -> Finished:
    """The record the worker wrote, or why it wrote none that finished."""
    from driver import results
    from driver.errors import ConfigError

    path = Path(str(job.options.run_dir)) / "record.json"
    record = None
    try:
        record = results.load_record(path) if path.is_file() else None
    except ConfigError:
        pass  # killed while writing it
    if record is not None and record.status != results.RUNNING:
        return Finished(job, record)
    how = f"was killed by {signal.Signals(-returncode).name}" if returncode < 0 else \
        f"exited with code {returncode}"
    return Finished(job, record, f"the worker {how} before the run finished"
                    f"{_log_tail(path.parent / WORKER_LOG)}")


def _log_tail(path: Path, lines: int = 3) -> str:
    tail = log_tail(path, lines)
    return f": {' | '.join(tail)}" if tail else ""
