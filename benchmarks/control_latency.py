"""Control latency: how soon the timeout and signals act, whatever the patterns and the console.

    python benchmarks/control_latency.py [--repeat 3]

Each scenario runs the real driver on a task that would run for 300 s, with ``--kill-grace 0.5``
(every task here dies at its first SIGTERM, so the grace is never waited out):

* ``backtrack + --timeout 1``: ``^(a+)+$`` meets a line of 40 a's and a '!' (2**40 steps for
  CPython's ``re``: hours; it holds the GIL all along);
* ``backtrack + SIGINT`` / ``+ SIGTERM``: the signal comes once the line after it is echoed;
* ``nobody reads stdout + --timeout 2``: 8 MiB of output into a pipe nobody reads;
* ``plain task + --timeout 1``: the reference, a harmless pattern and a task that just sleeps.

For a timeout the lateness is the record's ``duration_s`` minus the timeout (the driver's own
start-up not counted); for a signal it is the wall time from the signal to the driver's exit.
Medians of ``--repeat`` runs. The old driver was late by minutes to hours in the first four (it
searched, and echoed, on its control thread). Prints ``RATIO control_latency`` = the worst median
lateness / 1 s (target <= 1x: "within about 1 s"). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import (driver_command, driver_env, machine_line, median,  # noqa: E402
                     print_ratio, spread, write_task_config)

SCRIPTS = Path(__file__).resolve().parents[1] / "tests" / "scripts"
TARGET_S = 1.0
GRACE = ["--kill-grace", "0.5"]


def task_config(work: Path, name: str, script: str, args: str,
                metrics: list[tuple[str, str, str]]) -> Path:
    config = work / f"{name}.toml"
    command = f"{sys.executable} {SCRIPTS / script} {args}"
    write_task_config(config, name, command, metrics)
    return config


def driver(config: Path, name: str, work: Path, *extra: str, stdout: int | None = None,
           ) -> subprocess.Popen[bytes]:
    argv = driver_command() + ["--config", str(config), "--task-name", name,
                               "--runs-dir", str(work / "runs"),
                               "--output", str(work / "result.json"), *GRACE, *extra]
    return subprocess.Popen(argv, cwd=work, env=driver_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if stdout is None else stdout,
                            stderr=subprocess.DEVNULL)


def duration_s(work: Path, name: str) -> float:
    newest = max((work / "runs" / name).glob("*/record.json"), key=os.path.getmtime)
    return float(json.loads(newest.read_text())["duration_s"])


def timeout_lateness(config: Path, name: str, work: Path, timeout_s: float,
                     stdout: int | None = None) -> float:
    proc = driver(config, name, work, "--timeout", str(timeout_s),
                  stdout=subprocess.DEVNULL if stdout is None else stdout)
    proc.wait(timeout=600)
    return duration_s(work, name) - timeout_s


def signal_lateness(config: Path, name: str, work: Path, sig: int, after: bytes) -> float:
    proc = driver(config, name, work)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(after):
            break
    t0 = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=600)
    return time.monotonic() - t0


def unread_console(config: Path, work: Path) -> float:
    read_end, write_end = os.pipe()
    try:
        return timeout_lateness(config, "flood", work, 2.0, stdout=write_end)
    finally:
        os.close(write_end)
        os.close(read_end)


def scenarios(work: Path) -> dict[str, Callable[[], float]]:
    value = ("value", r"value: (\S+)", "last")
    slow = task_config(work, "backtrack", "backtrack.py", "40 300",
                       [value, ("as", r"^(a+)+$", "last")])
    flood = task_config(work, "flood", "flood.py", "8 300", [value])
    plain = task_config(work, "plain", "backtrack.py", "4 300", [value])
    return {
        "backtrack + --timeout 1": lambda: timeout_lateness(slow, "backtrack", work, 1.0),
        "backtrack + SIGINT": lambda: signal_lateness(slow, "backtrack", work, signal.SIGINT,
                                                      b"value: 2"),
        "backtrack + SIGTERM": lambda: signal_lateness(slow, "backtrack", work, signal.SIGTERM,
                                                       b"value: 2"),
        "nobody reads stdout + --timeout 2": lambda: unread_console(flood, work),
        "plain task + --timeout 1 (reference)": lambda: timeout_lateness(plain, "plain", work,
                                                                         1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenario")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 run each")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as folder:
        found: dict[str, list[float]] = {}
        for _ in range(repeat):
            for label, scenario in scenarios(Path(folder)).items():
                found.setdefault(label, []).append(scenario())
    print(f"lateness after the timeout or the signal, s, median of {repeat} (min..max):")
    for label, values in found.items():
        print(f"  {label:<40} {median(values):7.3f}  ({spread(values)})")
    worst = max(median(v) for label, v in found.items() if "reference" not in label)
    print_ratio("control_latency (worst lateness / 1 s)", worst / TARGET_S, "<= 1x",
                worst <= TARGET_S)


if __name__ == "__main__":
    main()
