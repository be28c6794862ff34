"""``--jobs N`` through the local backend: the records of serial runs, GPUs leased exclusively,
workers that die, resume, stop signals, the plugins of the driver on every worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from driver.backends import Backend, Finished, Placement, RunJob, log_tail
from driver.config import MetricSpec, TaskSpec
from driver.experiments.parallel import _GpuPool, _schedule
from driver.plugins import PluginSet
from tests import fake_nvml

# speed depends on {seed}; each run appends "start|end REP DEVICES" to events.log. --kill-at REP
# SIGKILLs the run's worker (an ancestor) once; --hold-s keeps a run busy a moment; --wait-at REP
# (-2: every repetition) waits until the file "release" exists.
TOY = """
import argparse, os, signal, sys, time
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int); p.add_argument("--rep", type=int)
p.add_argument("--kill-at", type=int, default=-1); p.add_argument("--hold-s", type=float, default=0)
p.add_argument("--wait-at", type=int, default=-1); p.add_argument("--tag", default="")
p.add_argument("--worker-marker", default="driver.worker")  # in the worker's command line
a = p.parse_args()
def log(what):
    with open("events.log", "a") as f:
        f.write(f"{what} {a.tag}/{a.rep} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\\n")
log("start")
if a.rep == a.kill_at and not os.path.exists("killed-once"):
    open("killed-once", "w").close()
    pid = os.getppid()
    def worker(pid):  # the shell that runs this script names the marker too
        line = open(f"/proc/{pid}/cmdline", "rb").read()
        return a.worker_marker.encode() in line and b"toy.py" not in line
    while not worker(pid):
        pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    os.kill(pid, signal.SIGKILL)  # the worker dies; its watchdog ends this process
    time.sleep(60)
while a.wait_at in (a.rep, -2) and not os.path.exists("release"):
    time.sleep(0.02)
time.sleep(a.hold_s)
print(f"speed: {100 + 10 * a.seed}")
print(f"loss: {1 / (a.seed + 1)}")
log("end")
"""

CONFIG = """
[tasks.toy]
command_to_execute = "{{python}} toy.py --seed {{seed}} --rep {{repetition}} --tag {{tag}} --kill-at {{kill_at}} --hold-s {{hold_s}} --wait-at {{wait_at}} --worker-marker {{worker_marker}}"
patterns = ['^speed: (\\S+)', '^loss: (\\S+)']
metrics = ['speed', 'loss']
compute_method = ['{method}', 'last']
num_gpus = {num_gpus}
[tasks.toy.params]
tag = "x"
kill_at = -1
hold_s = 0
wait_at = -1
worker_marker = "driver.worker"
[experiments.exp]
task = "toy"
repetitions = 2
matrix = {{ tag = ["a", "b"] }}
"""

#: Fields of a record that differ between a serial run and the same run through a backend.
PER_RUN = ("started_at", "ended_at", "duration_s", "memory", "resource_metrics", "environment",
           "gpus", "run_dir")


@pytest.fixture
def toy(tmp_path: Path, write_config):
    (tmp_path / "toy.py").write_text(TOY)

    def write(method: str = "last", num_gpus: int = 0) -> Path:
        return write_config(CONFIG.format(method=method, num_gpus=num_gpus))

    return write


def comparable(record_path: Path, runs_dir: Path) -> dict[str, Any]:
    """A record without what differs per run; paths relative to its runs directory."""
    text = record_path.read_text().replace(str(runs_dir.absolute()), "RUNS")
    record = {k: v for k, v in json.loads(text).items() if k not in PER_RUN}
    record["task_env"] = {k: v for k, v in record["task_env"].items()
                          if k != "CUDA_VISIBLE_DEVICES"}
    return record


def records(runs_dir: Path) -> dict[str, dict[str, Any]]:
    return {str(p.relative_to(runs_dir)): comparable(p, runs_dir)
            for p in sorted(runs_dir.glob("exp/*/*/record.json"))}


def test_jobs_give_the_records_and_statistics_of_serial_runs(toy, cli, tmp_path):
    toy()
    serial = cli("--experiment", "exp", "--runs-dir", "serial", "--quiet")
    parallel = cli("--experiment", "exp", "--runs-dir", "parallel", "-j", "2", "--quiet",
                   "--verbose")
    assert serial.returncode == 0, serial.stderr
    assert parallel.returncode == 0, parallel.stderr
    expected = records(tmp_path / "serial")
    assert len(expected) == 4 and records(tmp_path / "parallel") == expected
    for variant in ("tag=a", "tag=b"):
        before = json.loads((tmp_path / "serial/exp" / variant / "summary.json").read_text())
        after = json.loads((tmp_path / "parallel/exp" / variant / "summary.json").read_text())
        for metric in ("speed", "loss"):
            assert after["metrics"][metric] == before["metrics"][metric]
    assert "4/4 runs" in parallel.stderr and "started exp/tag=b repetition 1" in parallel.stderr


def test_repetitions_go_through_the_backend_too(toy, cli, tmp_path):
    toy()
    done = cli("--task-name", "toy", "--repetitions", "3", "--jobs", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    summary = json.loads(next((tmp_path / "bench-runs/toy").glob("*/summary.json")).read_text())
    assert summary["metrics"]["speed"]["values"] == [100, 110, 120]
    assert [r["status"] for r in summary["runs"]] == ["ok"] * 3


def test_a_drop_in_plugin_of_the_driver_is_loaded_on_every_worker(toy, cli, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "doubling.py").write_text(textwrap.dedent("""
        def bench_driver_register_compute_methods():
            return {"twice_last": lambda values, context: 2 * values[-1]}
    """))
    toy(method="twice_last")
    done = cli("--experiment", "exp", "-j", "2", "--plugins-dir", str(extra), "--quiet")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "bench-runs/exp/tag=a/summary.json").read_text())
    assert summary["metrics"]["speed"]["values"] == [200, 220]


def test_a_worker_killed_mid_run_is_that_runs_failure_and_reruns_on_resume(toy, cli, tmp_path):
    toy()
    first = cli("--experiment", "exp", "-j", "2", "--set", "kill_at=1", "--quiet")
    assert first.returncode == 130, first.stderr  # incomplete: the runs killed are interrupted
    assert "the worker was killed by SIGKILL before the run finished" in first.stderr
    killed = json.loads((tmp_path / "bench-runs/exp/tag=a/1/record.json").read_text())
    assert killed["status"] == "interrupted" and "SIGKILL" in killed["errors"][-1]
    summary = json.loads((tmp_path / "bench-runs/exp/tag=a/summary.json").read_text())
    assert summary["complete"] is False and summary["runs"][0]["status"] == "ok"
    (tmp_path / "events.log").unlink()
    again = cli("--experiment", "exp", "-j", "2", "--set", "kill_at=1", "--quiet")
    assert again.returncode == 0, again.stderr
    assert sorted(line.split()[1] for line in (tmp_path / "events.log").read_text().splitlines()
                  if line.startswith("start")) == ["a/1"]  # only the killed run ran again
    summary = json.loads((tmp_path / "bench-runs/exp/tag=a/summary.json").read_text())
    assert summary["complete"] is True and summary["metrics"]["speed"]["values"] == [100, 110]


def test_sigterm_stops_every_run_and_resume_reruns_them(toy, tmp_path):
    """Both runs in flight wait (a run that finished first would free its slot for the next one
    before the signal: a race), so the signal finds exactly a/0 and a/1 running."""
    toy()
    run = [sys.executable, "-m", "driver", "--experiment", "exp", "-j", "2", "--set",
           "wait_at=-2", "--quiet"]
    driver = subprocess.Popen(run + ["--verbose"], cwd=tmp_path, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert driver.stderr is not None
    while not {"start a/0", "start a/1"} <= {" ".join(line.split()[:2]) for line in
                                             _events(tmp_path).splitlines()}:
        time.sleep(0.02)  # until both runs' commands are up
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=60) == 128 + signal.SIGTERM
    for rep in (0, 1):
        record = json.loads((tmp_path / f"bench-runs/exp/tag=a/{rep}/record.json").read_text())
        assert record["status"] == "interrupted" and record["signal"] == "SIGTERM"
    assert not list((tmp_path / "bench-runs/exp").glob("tag=b/*/record.json"))  # none started
    (tmp_path / "release").touch()
    (tmp_path / "events.log").unlink()
    again = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert again.returncode == 0, again.stderr
    assert sorted(line.split()[1] for line in _events(tmp_path).splitlines()
                  if line.startswith("start")) == ["a/0", "a/1", "b/0", "b/1"]


def _events(tmp_path: Path) -> str:
    try:
        return (tmp_path / "events.log").read_text()
    except FileNotFoundError:
        return ""


def test_a_second_invocation_is_refused_while_workers_run(toy, cli, tmp_path):
    toy()
    driver = subprocess.Popen(
        [sys.executable, "-m", "driver", "--experiment", "exp", "-j", "2", "--set", "wait_at=0",
         "--quiet"], cwd=tmp_path, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    while "start a/0" not in _events(tmp_path):
        time.sleep(0.02)  # until a run's command is up
    second = cli("--experiment", "exp", "-j", "2", "--set", "wait_at=0")
    (tmp_path / "release").touch()
    assert driver.wait(timeout=120) == 0
    assert second.returncode == 3 and "this experiment is being run by process" in second.stderr


def test_the_driver_starts_without_ray_or_submitit(tmp_path):
    # sys.modules, not -X importtime: importlib.import_module (how plugins load) is not logged
    program = ("import sys, driver.cli\n"
               "try:\n    driver.cli.main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
               "print(' '.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    imported = done.stderr.split()
    assert done.returncode == 0 and "plugins.backends" in imported  # the plugin is loaded
    assert "--backend" in done.stdout
    assert not [m for m in imported if m.split(".")[0] in ("ray", "submitit")], imported


def test_gpus_are_leased_exclusively_from_the_pool(toy, cli, tmp_path):
    uuids = [f"GPU-{i}{i}{i}{i}aaaa-0000-0000-0000-00000000000{i}" for i in range(3)]
    devices = [{"name": "Fake", "uuid": u, "total_mib": 1000} for u in uuids]
    env = fake_nvml.scenario_env(tmp_path / "nvml.json", {"devices": devices})
    toy(num_gpus=1)
    done = cli("--experiment", "exp", "-j", "3", "--set", "hold_s=0.3", "--quiet",
               env={**env, "CUDA_VISIBLE_DEVICES": f"{uuids[2][:12]},0"})  # UUID and index
    assert done.returncode == 0, done.stderr
    held: dict[str, str] = {}
    for line in (tmp_path / "events.log").read_text().splitlines():
        what, run, device = line.split()
        assert device in (uuids[2], uuids[0]), line  # the pool only, one GPU each, by UUID
        if what == "start":
            assert device not in held, f"{run} got {device}, held by {held.get(device)}"
            held[device] = run
        else:
            del held[device]
    gpus = {json.loads(p.read_text())["gpus"][0]
            for p in (tmp_path / "bench-runs/exp").glob("*/*/record.json")}
    assert gpus <= {0, 2}


def test_a_run_needing_more_gpus_than_the_pool_is_refused_before_anything_runs(toy, cli,
                                                                                tmp_path):
    devices = [{"name": "Fake", "uuid": "GPU-1111aaaa-0000-0000-0000-000000000001",
                "total_mib": 1000}]
    env = fake_nvml.scenario_env(tmp_path / "nvml.json", {"devices": devices})
    toy(num_gpus=2)
    done = cli("--experiment", "exp", "-j", "2", env=env)
    assert done.returncode == 3 and "needs 2 GPU(s) but the pool has 1" in done.stderr
    assert not (tmp_path / "events.log").exists()


@pytest.mark.parametrize("args, message", [
    (("--experiment", "exp", "-j", "0"), "--jobs 0: expected a whole number"),
    (("--experiment", "exp", "--backend", "locl"), "did you mean 'local'"),
    (("--task-name", "toy", "-j", "2"), "--jobs and --backend apply to --repetitions"),
])
def test_bad_jobs_and_backends_are_refused_before_anything_runs(toy, cli, tmp_path, args,
                                                                 message):
    toy()
    done = cli(*args)
    assert done.returncode == 3 and message in done.stderr, done.stderr
    assert not (tmp_path / "events.log").exists()


@pytest.mark.parametrize("backend, module", [("ray", "ray"), ("slurm", "submitit")])
def test_a_missing_extra_names_the_pip_command(toy, cli, tmp_path, backend, module):
    fake = tmp_path / "site" / module
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('{module} is not installed here')\n")
    toy()
    done = cli("--experiment", "exp", "--backend", backend,
               env={"PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{REPO}"})
    assert done.returncode == 3, done.stderr
    assert f"pip install 'bench-driver[{backend}]'" in done.stderr, done.stderr
    assert not (tmp_path / "events.log").exists()


class _ScriptedBackend(Backend):
    """Ends the jobs in the order the test says, recording each placement."""

    def __init__(self, end_order: list[int]) -> None:
        self.end_order, self.live, self.placed = end_order, {}, []

    def submit(self, job: RunJob, placement: Placement) -> None:
        for other in self.live.values():
            assert not set(other.devices) & set(placement.devices), "a GPU leased twice"
        self.live[job.key] = placement
        self.placed.append((job.key, placement.devices))

    def next_finished(self, timeout_s: float) -> Finished | None:
        for wanted in list(self.end_order):
            key = str(wanted)
            if key in self.live:
                self.end_order.remove(wanted)
                del self.live[key]
                return Finished(_jobs[key], _record(key))
        return None


def _job(key: int, gpus: int) -> RunJob:
    from driver.benchmark import RunOptions

    task = TaskSpec("t", "true", (MetricSpec("m", "x", "last"),), num_gpus=gpus)
    return RunJob(str(key), str(key), task, RunOptions(run_dir=Path(str(key))), PluginSet(),
                  ".", gpus)


def _record(key: str) -> Any:
    from driver.results import RunRecord

    return RunRecord("t", "true", "ok", 0, "", "", 0.0, key)


_jobs: dict[str, RunJob] = {}


def test_the_scheduler_waits_for_free_gpus_and_keeps_the_order():
    work = [_job(0, 2), _job(1, 1), _job(2, 2), _job(3, 1)]
    _jobs.update({j.key: j for j in work})
    backend = _ScriptedBackend([1, 0, 2, 3])
    done = _schedule(work, backend, 3, _GpuPool(("A", "B", "C")), ())
    assert sorted(done) == ["0", "1", "2", "3"]
    # 0 takes A,B and 1 takes C; 2 (two GPUs) waits for 0 and 1; 3 waits behind it
    assert backend.placed == [("0", ("A", "B")), ("1", ("C",)), ("2", ("C", "A")),
                              ("3", ("B",))]


def test_the_console_counts_runs_and_estimates_the_time_left():
    import io

    from driver.experiments.progress import Progress

    out = io.StringIO()
    progress = Progress(4, 2, out)
    progress.started("a", "exp/x repetition 0", "GPU GPU-1")
    assert progress.overall() == "0/4 runs"  # no estimate before a run ended
    progress.ended("a", "ok")
    assert progress.overall().startswith("1/4 runs, ETA ")
    lines = out.getvalue().splitlines()
    assert lines[0] == "bench-driver: [0/4 runs] started exp/x repetition 0 on GPU GPU-1"
    assert lines[1].startswith("bench-driver: [1/4 runs, ETA ") and ": ok (" in lines[1]


def test_on_a_terminal_the_active_runs_are_redrawn(toy, tmp_path):
    import pty

    toy()
    leader, follower = pty.openpty()
    driver = subprocess.Popen([sys.executable, "-m", "driver", "--experiment", "exp", "-j", "2",
                               "--quiet", "--verbose"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=follower, env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the driver closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert driver.wait(timeout=60) == 0
    text = seen.decode(errors="replace")
    assert "  exp/tag=a repetition 0 (seed 0)  0 s" in text  # an active run's line
    assert "bench-driver: 0/4 runs" in text and "[0/4 runs]" not in text  # not the plain lines
    assert "bench-driver: exp/tag=b repetition 1 (seed 1): ok" in text


def test_as_completed_yields_each_live_run_as_it_ends():
    from driver.backends import as_completed

    work = [_job(10, 0), _job(11, 0)]
    _jobs.update({j.key: j for j in work})
    backend = _ScriptedBackend([11, 10])
    for job in work:
        backend.submit(job, Placement())
    assert [f.job.key for f in as_completed(backend, 2)] == ["11", "10"]


def test_log_tail_reads_only_the_end_of_a_big_log(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_bytes(b"x" * (1 << 20) + b"\nepoch 1\nTraceback\nValueError: bad \xff\n\n")
    assert log_tail(log, 2) == ["Traceback", "ValueError: bad \ufffd"]
    assert log_tail(log, 5, max_bytes=12) == ["ror: bad \ufffd"]  # only the last 12 bytes read
    assert log_tail(tmp_path / "absent.log", 3) == []
