"""The Ray backend: each run is one Ray task that asks for the run's GPUs and CPUs
(``num_gpus``, ``--ray-cpus-per-run``).

The cluster is ``--address`` (else ``RAY_ADDRESS``); with neither, a local cluster is started for
the invocation. A task runs :func:`driver.worker.execute`, the same pipeline as a serial run, on
whichever node Ray picks; Ray sets its ``CUDA_VISIBLE_DEVICES``, and the driver leases nothing.
The run directory is written where the worker runs, so the runs directory must be on storage
every node sees (docs/backends.md). Retry policy: a task whose worker or node died is retried by
Ray up to ``--ray-retries`` times (default 1), into the same run directory; a run that ended
(failed, timed out) is a result, never retried; a worker that died for good is that run's failure,
with Ray's reason, and the run reruns on resume. Ctrl-C cancels every live task.
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

from driver.backends import Backend, Finished, Placement, RunJob
from driver.errors import ConfigError

INSTALL = "pip install 'bench-driver[ray]'"
CONNECT_TIMEOUT_S = 5.0


class RayBackend(Backend):
    """Ray tasks on a cluster (or a local one)."""

    places_gpus = True

    def __init__(self, options: argparse.Namespace, jobs: int) -> None:
        self.address = getattr(options, "address", None) or os.environ.get("RAY_ADDRESS") or None
        self.retries = getattr(options, "ray_retries", 1)
        self.cpus = getattr(options, "ray_cpus_per_run", 1.0)
        self._live: dict[Any, RunJob] = {}
        self._ray: Any = None

    def check(self) -> None:
        if self.retries < 0 or not self.cpus >= 0:
            raise ConfigError(f"--ray-retries {self.retries}, --ray-cpus-per-run {self.cpus:g}: "
                              f"expected numbers >= 0")
        try:
            import ray
        except ImportError:
            raise ConfigError(f"--backend ray needs Ray: {INSTALL}") from None
        if self.address is not None:
            _check_reachable(self.address)
        try:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--backend ray: cannot connect to the Ray cluster at "
                              f"{self.address!r}: {exc}") from None
        self._ray = ray

    def submit(self, job: RunJob, placement: Placement) -> None:
        from driver.worker import execute

        remote = self._ray.remote(num_cpus=self.cpus, num_gpus=job.gpus,
                                  max_retries=self.retries, retry_exceptions=False)(execute)
        self._live[remote.remote(job)] = job

    def next_finished(self, timeout_s: float) -> Finished | None:
        if not self._live:
            return None
        ready, _ = self._ray.wait(list(self._live), num_returns=1, timeout=timeout_s)
        if not ready:
            return None
        job = self._live.pop(ready[0])
        try:
            return Finished(job, self._ray.get(ready[0]))
        except self._ray.exceptions.RayError as exc:
            reason = str(exc).strip().splitlines()
            return Finished(job, None, f"the Ray task failed ({type(exc).__name__}: "
                                       f"{reason[-1] if reason else ''})")

    def cancel(self, signal_name: str) -> None:
        for ref in self._live:
            self._ray.cancel(ref)

    def close(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` address that nothing answers on is refused at once (Ray itself would
    keep retrying); ``auto`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"--address {address!r}: no Ray cluster answers there "
                          f"({exc.strerror or exc}); start one with `ray start --head`, or leave "
                          f"out --address (and RAY_ADDRESS) for a local cluster") from None
