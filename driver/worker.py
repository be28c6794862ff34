"""The worker side of a backend: one run of the usual pipeline, in a process of its own.

:func:`execute` is what every backend runs for a :class:`~driver.backends.RunJob`: in a
``python -m driver.worker`` subprocess (the local backend, the job on standard input, pickled), in
a Ray task, in a submitit job. It loads the plugins the driver loaded, then calls
:func:`driver.benchmark.run_benchmark` exactly as a serial run does; the record lands in the run
directory and is returned.

A local worker is told the read end of a pipe whose write end only the driver holds
(:data:`PARENT_FD_ENV`): when the driver dies, even by SIGKILL, the pipe reads EOF and the worker
stops its run as on SIGTERM, recording it interrupted (so that it reruns on resume).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driver.backends import RunJob
    from driver.results import RunRecord

PARENT_FD_ENV = "BENCH_DRIVER_PARENT_FD"


def execute(job: RunJob) -> RunRecord:
    """Run *job* here and return its record (also written to its run directory)."""
    from driver.benchmark import run_benchmark
    from driver.plugins import load_plugins

    os.chdir(job.cwd)
    chosen = job.plugin_set
    plugins = load_plugins(plugin_dirs=chosen.dirs, blocked=chosen.blocked,
                           extra_modules=chosen.modules, autoload=chosen.autoload)
    options = job.options._replace(environ=dict(os.environ))  # this worker's GPUs
    return run_benchmark(job.task, options, plugins)


def _stop_when_parent_dies(fd: int) -> None:
    """SIGTERM to this process when the driver's end of the pipe *fd* closes."""

    def watch() -> None:
        while os.read(fd, 64):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="bench-driver-parent").start()


def main() -> int:
    """``python -m driver.worker``: the pickled job on standard input; exits with the run's
    exit code (a BenchDriverError's code, with its message on standard error)."""
    from driver.errors import BenchDriverError
    from driver.results import exit_code_for

    fd = os.environ.pop(PARENT_FD_ENV, "")
    if fd.isdigit():
        _stop_when_parent_dies(int(fd))
    job = pickle.load(sys.stdin.buffer)
    try:
        return int(exit_code_for(execute(job)))
    except BenchDriverError as exc:
        print(f"bench-driver: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
