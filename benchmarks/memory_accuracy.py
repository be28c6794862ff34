"""Memory accuracy: the driver's CPU peak for a grandchild workload, against ``/usr/bin/time -v``.

    python benchmarks/memory_accuracy.py [--mb 300] [--hold-s 0.2] [--repeat 5]

The workload is ``python3 -c "<touch MB, hold it HOLD s>"; true`` run by ``/bin/sh``: the trailing
``true`` keeps the shell from exec-ing python, so python is a grandchild of the driver (driver ->
sh -> python3), and under GNU time a grandchild of ``time`` alike. Compared, medians of
``--repeat`` interleaved runs:

* the driver's ``cpu_memory_usage`` (the flat result file, MiB), with the run record's details
  (``memory.cpu_memory``: ``peak_process_mib``, ``peak_tree_sum_mib``, ``kernel_maxrss_mib``);
* "Maximum resident set size" of ``/usr/bin/time -v sh -c COMMAND`` (the kernel's peak RSS of
  the largest process; ``apt-get install -y time``; without it ``os.wait4`` gives the same figure).

Prints ``RATIO memory_accuracy`` = driver / GNU time (target within 2%: 0.98..1.02).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import (KIB_PER_MIB, driver_command, driver_env, gnu_time_maxrss_kib,  # noqa: E402
                     machine_line, median, print_ratio, run_timed, spread, write_task_config)

TASK = "hold_memory"
TOLERANCE = 0.02
DETAILS = ("peak_mib", "peak_process_mib", "peak_process_source", "peak_tree_sum_mib",
           "kernel_maxrss_mib", "spawn_floor_mib", "samples", "max_processes")


def workload(mb: float, hold_s: float) -> str:
    """The shell command: python (a grandchild) touches *mb* MB, holds it, exits; then ``true``."""
    code = (f"import time; b = b'\\x01' * {int(mb * 1_000_000)}; time.sleep({hold_s}); "
            f"assert b[-1] == 1")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}; true"


def driver_peak(config: Path, work: Path, index: int) -> tuple[float, dict[str, object]]:
    """(cpu_memory_usage MiB, the record's memory.cpu_memory) of one driver run."""
    runs = work / f"runs-{index}"
    result = work / "result.json"
    argv = driver_command() + ["--config", str(config), "--task-name", TASK, "--quiet",
                               "--output", str(result), "--runs-dir", str(runs)]
    done = run_timed(argv, work, driver_env())
    if done.returncode != 0:
        sys.exit(f"the driver failed ({done.returncode}):\n{done.stderr}")
    record = json.loads(next(runs.glob(f"{TASK}/*/record.json")).read_text())
    value = json.loads(result.read_text())[f"{TASK}.cpu_memory_usage"]
    return float(value), dict(record["memory"]["cpu_memory"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=300, help="MB the grandchild holds (300)")
    parser.add_argument("--hold-s", type=float, default=0.2, help="seconds it holds them (0.2)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 30 MB, one run each")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.repeat = 30, 1
    print(machine_line())
    command = workload(args.mb, args.hold_s)
    print(f"workload (driver -> sh -> python3): {command}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        work = Path(folder)
        config = work / "task_config.toml"
        write_task_config(config, TASK, command, [])
        references, peaks, details = [], [], []
        how = ""
        for index in range(args.repeat):  # interleaved
            kib, how = gnu_time_maxrss_kib(["/bin/sh", "-c", command], work)
            references.append(kib / KIB_PER_MIB)
            peak, detail = driver_peak(config, work, index)
            peaks.append(peak)
            details.append(detail)
    report(args, how, references, peaks, details)


def report(args: argparse.Namespace, how: str, references: list[float], peaks: list[float],
           details: list[dict[str, object]]) -> None:
    reference, peak = median(references), median(peaks)
    print(f"{args.mb:g} MB held {args.hold_s:g} s by a grandchild; median of {args.repeat} "
          f"(min..max), MiB:")
    print(f"  {how + ' Maximum resident set size':<52} {reference:9.3f}  "
          f"({spread(references)})")
    print(f"  {'bench-driver cpu_memory_usage':<52} {peak:9.3f}  ({spread(peaks)})")
    print("  run record memory.cpu_memory, per run:")
    for key in DETAILS:
        print(f"    {key:<22} " + "  ".join(f"{d.get(key)!s:>12}" for d in details))
    ratio = peak / reference
    print_ratio("memory_accuracy (driver / GNU time)", ratio,
                f"within {TOLERANCE:.0%}: {1 - TOLERANCE:.2f}..{1 + TOLERANCE:.2f}",
                abs(ratio - 1) <= TOLERANCE)


if __name__ == "__main__":
    main()
