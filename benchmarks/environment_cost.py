"""What collecting the environment block and the noise checks costs a run (issue 19).

    python benchmarks/environment_cost.py [--repeat 200] [--quick]

Timed in-process, medians of ``--repeat`` calls, ms:

* on the run's path (the calling thread, before and after the command): the noise checks'
  reading (``RunWatch``: cpufreq, loadavg, turbo; no GPU) and its ``finish``;
* in the background thread (while the task runs): ``environment.collect`` (cpuinfo, meminfo,
  cgroup, kernel, the dist-info scan for torch/CUDA/cuDNN/NCCL) and the whole
  ``results.environment`` (with the ``git describe`` subprocess it always had);
* the reference: one ``python3 -c pass`` started from here, timed in the same run.

Prints ``RATIO environment_on_run_path`` = the run path's cost / ``python3 -c pass`` (target
at most 0.05x: the checks must not be what makes a trivial run slow). Asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import machine_line, median, print_ratio  # noqa: E402

TARGET = 0.05


def timed_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of *fn*, ms."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a few calls (the smoke test)")
    args = parser.parse_args()
    repeat = 5 if args.quick else args.repeat
    from driver import environment, results
    from driver.noise import RunWatch, warn

    quiet = {"BENCH_DRIVER_SYSTEM_ROOT": "/"}
    import driver.noise
    driver.noise.warn = lambda lines: None  # time the reading, not the console
    watch = RunWatch((), False, quiet)
    rows = {
        "run path: RunWatch (the checks before the command)":
            timed_ms(lambda: RunWatch((), False, quiet), repeat),
        "run path: RunWatch.finish (after the command)": timed_ms(lambda: watch.finish({}), repeat),
        "background: environment.collect": timed_ms(lambda: environment.collect(), repeat),
        "background: results.environment (with git describe)":
            timed_ms(lambda: results.environment(Path.cwd()), max(3, repeat // 20)),
        "reference: python3 -c pass": timed_ms(
            lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
            max(3, repeat // 10)),
    }
    driver.noise.warn = warn
    print(machine_line())
    for label, ms in rows.items():
        print(f"  {label:<58} {ms:8.3f} ms")
    run_path = rows["run path: RunWatch (the checks before the command)"] + \
        rows["run path: RunWatch.finish (after the command)"]
    ratio = run_path / rows["reference: python3 -c pass"]
    print_ratio("environment_on_run_path", ratio, f"<= {TARGET}x", ratio <= TARGET)


if __name__ == "__main__":
    main()
