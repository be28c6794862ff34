"""The Slurm backend, through submitit: each run is one Slurm job (``sbatch``).

The job runs :func:`driver.worker.execute` (the same pipeline as a serial run) on the node
Slurm picks, with the partition, time limit, CPUs and GPUs of the ``--slurm-*`` options (GPUs
default to the run's ``num_gpus``); Slurm sets its ``CUDA_VISIBLE_DEVICES``. The runs directory
must be on storage the nodes share (it usually is: the home or project file system). Without
``sbatch`` the backend is refused before anything starts (exit 3).
``--slurm-executor local`` runs each job as a local subprocess through submitit's local
executor instead (no Slurm needed; the tests use it).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from driver.backends import Backend, Finished, Placement, RunJob
from driver.errors import ConfigError

INSTALL = "pip install 'bench-driver[slurm]'"
POLL_S = 0.1  # submitit's own watcher rate-limits what it asks Slurm


class SlurmBackend(Backend):
    """Slurm jobs through submitit (or its local executor)."""

    places_gpus = True

    def __init__(self, options: argparse.Namespace, jobs: int) -> None:
        self.options = options
        self.folder = options.slurm_folder or Path(options.runs_dir) / ".slurm"
        self._live: dict[Any, RunJob] = {}
        self._submitit: Any = None

    def check(self) -> None:
        o = self.options
        if not (o.slurm_time_min > 0 and o.slurm_cpus_per_run >= 1 and
                (o.slurm_gpus_per_run is None or o.slurm_gpus_per_run >= 0)):
            raise ConfigError(f"--slurm-time-min {o.slurm_time_min:g}, --slurm-cpus-per-run "
                              f"{o.slurm_cpus_per_run}, --slurm-gpus-per-run "
                              f"{o.slurm_gpus_per_run}: expected minutes > 0, CPUs >= 1, "
                              f"GPUs >= 0")
        try:
            import submitit
        except ImportError:
            raise ConfigError(f"--backend slurm needs submitit: {INSTALL}") from None
        if o.slurm_executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
            raise ConfigError("--backend slurm: no sbatch/srun on PATH: run on a Slurm login "
                              "node, or pass --slurm-executor local to run the jobs here "
                              "through submitit's local executor")
        self._submitit = submitit

    def parameters(self, job: RunJob) -> dict[str, Any]:
        """submitit's parameters for *job*'s Slurm job."""
        o = self.options
        gpus = job.gpus if o.slurm_gpus_per_run is None else o.slurm_gpus_per_run
        found: dict[str, Any] = {"timeout_min": o.slurm_time_min, "gpus_per_node": gpus,
                                 "name": f"bench-driver-{job.task.name}"}
        if o.slurm_executor == "slurm":
            found.update(cpus_per_task=o.slurm_cpus_per_run, tasks_per_node=1, nodes=1)
            if o.slurm_partition:
                found["slurm_partition"] = o.slurm_partition
        return found

    def submit(self, job: RunJob, placement: Placement) -> None:
        from driver.worker import execute

        kind = self._submitit.AutoExecutor if self.options.slurm_executor == "slurm" else \
            self._submitit.LocalExecutor
        executor = kind(folder=str(self.folder))
        parameters = self.parameters(job)
        if kind is self._submitit.LocalExecutor:
            parameters.pop("name")
        executor.update_parameters(**parameters)
        self._live[executor.submit(execute, job)] = job

    def next_finished(self, timeout_s: float) -> Finished | None:
        deadline = time.monotonic() + timeout_s
        while self._live:
            for handle in list(self._live):
                if handle.done():
                    return self._finished(handle, self._live.pop(handle))
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        return None

    def _finished(self, handle: Any, job: RunJob) -> Finished:
        try:
            return Finished(job, handle.result())
        except Exception as exc:  # submitit's FailedJobError, UncompletedJobError...
            reason = str(exc).strip().splitlines()
            return Finished(job, None, f"the Slurm job {handle.job_id} failed "
                                       f"({type(exc).__name__}: {reason[-1] if reason else ''})")

    def cancel(self, signal_name: str) -> None:
        for handle in self._live:
            handle.cancel(check=False)


def sbatch_script(backend: SlurmBackend, job: RunJob) -> str:
    """The sbatch file submitit would write for *job* (to check it, or to show it)."""
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    renamed = SlurmExecutor._equivalence_dict()
    params = {str(renamed.get(k, k)).removeprefix("slurm_"): v
              for k, v in backend.parameters(job).items()}
    params["time"] = int(params["time"])
    return str(_make_sbatch_string(command="python -u -m submitit.core._submit FOLDER",
                                   folder=str(backend.folder), **params))
