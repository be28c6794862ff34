"""Execution backends: the speedup of ``--jobs 2`` and the per-run cost of each backend.

    python benchmarks/backends_overhead.py [--runs 8] [--busy-s 3] [--quick]

Two measurements, wall time of the whole ``bench-driver`` process:

* speedup: an experiment of ``--runs`` CPU-bound runs (each a pure-Python busy loop of about
  ``--busy-s`` seconds) with ``--jobs 1`` and with ``--jobs 2``, interleaved; prints
  ``RATIO jobs2_speedup`` = time with 1 job / time with 2 (target >= 1.7x on 2 idle cores);
* per-run overhead: an experiment of trivial runs (the task prints one line) with N and with
  ``--runs`` runs on each backend, one at a time; (T(runs) - T(N)) / (runs - N) is the cost of
  one run, without the fixed start (Ray's connection, the plugins). Prints, per backend, that
  cost and its difference to the local backend's, in milliseconds; Ray runs on a local cluster
  started by this script (not timed), submitit on its local executor. A backend whose extra is
  not installed is reported as such.

Asserts nothing: timings live here, the tests check behaviour.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (driver_command, driver_env, machine_line, median, print_ratio,  # noqa: E402
                     run_timed, spread)

BUSY = """
import sys, time
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
print("done: 1")
"""

CONFIG = """
[tasks.busy]
command_to_execute = "{{python}} busy.py {busy_s}"
patterns = ['^done: (\\d+)']
metrics = ['done']
compute_method = ['last']
[tasks.trivial]
command_to_execute = "{{python}} busy.py 0"
patterns = ['^done: (\\d+)']
metrics = ['done']
compute_method = ['last']
[experiments.busy]
task = "busy"
[experiments.trivial]
task = "trivial"
"""

BACKENDS = {"local": (), "ray": ("--backend", "ray"),
            "submitit-local": ("--backend", "slurm", "--slurm-executor", "local")}


def experiment(workdir: Path, name: str, runs: int, extra: tuple[str, ...],
               env: dict[str, str]) -> float:
    """Wall seconds of one fresh experiment run."""
    runs_dir = tempfile.mkdtemp(dir=workdir, prefix="runs-")
    argv = [*driver_command(), "--experiment", name, "--repetitions", str(runs), "--quiet",
            "--runs-dir", runs_dir, "--output", os.devnull, *extra]
    done = run_timed(argv, workdir, env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.wall_s


def speedup(workdir: Path, runs: int, repeat: int, env: dict[str, str]) -> None:
    one, two = [], []
    for _ in range(repeat):
        one.append(experiment(workdir, "busy", runs, ("--jobs", "1"), env))
        two.append(experiment(workdir, "busy", runs, ("--jobs", "2"), env))
    ratio = median(one) / median(two)
    print(f"{runs} CPU-bound runs: --jobs 1 {median(one):.2f} s ({spread(one, '{:.2f}')}), "
          f"--jobs 2 {median(two):.2f} s ({spread(two, '{:.2f}')})")
    print_ratio("jobs2_speedup", ratio, ">= 1.7x on 2 idle cores", ratio >= 1.7)


def per_run_ms(workdir: Path, extra: tuple[str, ...], few: int, runs: int, repeat: int,
               env: dict[str, str]) -> float:
    small = [experiment(workdir, "trivial", few, (*extra, "--jobs", "1"), env)
             for _ in range(repeat)]
    large = [experiment(workdir, "trivial", runs, (*extra, "--jobs", "1"), env)
             for _ in range(repeat)]
    return 1000 * (median(large) - median(small)) / (runs - few)


def overheads(workdir: Path, runs: int, repeat: int, env: dict[str, str]) -> None:
    cost: dict[str, float] = {}
    for name, extra in BACKENDS.items():
        if not _installed(name):
            print(f"{name}: not measured (its extra is not installed)")
            continue
        cost[name] = per_run_ms(workdir, extra, 2, runs, repeat, env)
        versus = f", {cost[name] - cost['local']:+.0f} ms against local" if name != "local" \
            else ""
        print(f"{name}: {cost[name]:.0f} ms per run{versus}")


def _installed(name: str) -> bool:
    module = {"ray": "ray", "submitit-local": "submitit"}.get(name)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def start_ray(workdir: Path, env: dict[str, str]) -> subprocess.Popen[bytes] | None:
    """A local Ray head for the Ray measurements (RAY_ADDRESS set in *env*)."""
    if not _installed("ray"):
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         f"--port={port}", f"--temp-dir={workdir / 'ray'}", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if head.poll() is not None:
                raise SystemExit("ray start failed") from None
            time.sleep(0.2)
    env["RAY_ADDRESS"] = f"127.0.0.1:{port}"
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--busy-s", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.busy_s, args.repeat = 4, 0.3, 1
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="backends-") as tmp:
        workdir = Path(tmp)
        (workdir / "task_config.toml").write_text(CONFIG.format(busy_s=args.busy_s))
        (workdir / "busy.py").write_text(BUSY)
        env = driver_env({"RAY_AUTH_MODE": "disabled"})
        speedup(workdir, args.runs, args.repeat, env)
        head = start_ray(workdir, env) if not args.quick else None
        if args.quick:
            BACKENDS.pop("ray")  # a cluster costs seconds and ~700 MiB: not in the smoke test
        try:
            overheads(workdir, args.runs, args.repeat, env)
        finally:
            if head is not None:
                head.terminate()
                head.wait(timeout=60)


if __name__ == "__main__":
    main()
