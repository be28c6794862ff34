"""The console echo's cost: the driver running ``cat LOG`` with its output echoed, or not.

    python benchmarks/console_echo.py [--size-mb 200] [--repeat 5]

The task is ``cat LOG`` (a generated log, ~5% of its lines match the one pattern); the driver is
timed as a whole process, medians of ``--repeat`` interleaved runs, with its stdout:

* ``--quiet``: no echo (the scrape and the log only);
* a file; a pipe read by ``cat > /dev/null``;
* a pseudo-terminal read as fast as this script can (the timed echo; a pty moves only ~100 MB/s,
  so most of a fast log is skipped there, with a note of how many bytes: counted here);

with the driver's peak RSS (``--size-mb 1000``: flat on a 1 GB log);

and, for context, ``cat LOG > FILE`` and ``cat LOG | tee FILE > FILE2`` (the old way of keeping a
log beside the console) and ``LC_ALL=C grep -E -o PATTERN LOG > FILE``.
Prints ``RATIO console_echo`` = driver with stdout to a file / driver ``--quiet`` (target at
most 1.1x: the echo runs in the kernel, beside the scrape). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import (driver_command, driver_env, machine_line, median,  # noqa: E402
                     print_ratio, run_timed, spread, write_task_config)

PATTERN = r"Speed: ([0-9.]+) samples/sec"
TARGET = 1.1
NOTE = re.compile(rb"skipped ([\d,]+) bytes of output")


def write_log(path: Path, size_mb: float) -> None:
    """MXNet-style lines, one in twenty a ``Speed:`` line; deterministic."""
    lines = []
    for i in range(1000):
        if i % 20 == 0:
            lines.append(f"INFO:root:Epoch[0] Batch [{i}]\tSpeed: {1000 + i}.25 samples/sec\n")
        else:
            lines.append(f"INFO:root:Epoch[0] Batch [{i}]\tTrain-accuracy=0.{i:04d} loss\n")
    block = "".join(lines).encode()
    with open(path, "wb") as f:
        for _ in range(max(1, int(size_mb * 1e6 / len(block)))):
            f.write(block)


Timing = tuple[float, float]  # (wall s, CPU s: user + system, children included)


def shell(work: Path, command: str) -> Timing:
    done = run_timed(["/bin/sh", "-c", command], work)
    return done.wall_s, done.cpu_s


PEAK_RSS_KIB: dict[str, int] = {}  # per driver cell: wait4 of the driver (and its reaped helpers)


def driver_run(argv: list[str], work: Path, stdout_path: Path | None = None) -> Timing:
    done = run_timed(argv, work, driver_env(), stdout_path)
    label = "stdout to a file" if stdout_path else "--quiet"
    PEAK_RSS_KIB[label] = max(PEAK_RSS_KIB.get(label, 0), done.maxrss_kib)
    return done.wall_s, done.cpu_s


def through_pty(argv: list[str], work: Path) -> tuple[Timing, int]:
    """((wall s, CPU s), bytes the driver said it skipped) of *argv* with a pty as stdout."""
    import subprocess

    master, slave = os.openpty()
    got = bytearray()

    def read() -> None:
        while True:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO once the last writer closed the slave
                return
            if not data:
                return
            got.extend(data[-4096:] if len(got) > 1 << 20 else data)  # keep the notes, not all

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=work, env=driver_env(), stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = 0
    os.close(slave)
    reader.join(5)
    os.close(master)
    skipped = sum(int(n.replace(b",", b"")) for n in NOTE.findall(bytes(got)))
    return (wall, usage.ru_utime + usage.ru_stime), skipped


def commands(work: Path, log: Path, pty_skipped: list[int]) -> dict[str, Callable[[], Timing]]:
    """The timed cells; the pty cell appends what the driver skipped to *pty_skipped*."""
    config = work / "task_config.toml"
    write_task_config(config, "cat", f"cat {shlex.quote(str(log))}", [("speed", PATTERN, "last")])
    run = driver_command() + ["--config", str(config), "--task-name", "cat",
                              "--runs-dir", str(work / "runs"), "--output",
                              str(work / "result.json")]
    line = " ".join(map(shlex.quote, run))
    out, out2 = shlex.quote(str(work / "out")), shlex.quote(str(work / "out2"))
    quoted = shlex.quote(str(log))

    def pty() -> Timing:
        timing, skipped = through_pty(run, work)
        pty_skipped.append(skipped)
        return timing

    cells: dict[str, Callable[[], Timing]] = {
        "driver --quiet": lambda: driver_run(run + ["--quiet"], work),
        "driver, stdout to a file": lambda: driver_run(run, work, work / "out"),
        "driver, stdout to `cat > /dev/null`": lambda: shell(
            work, f"{line} | cat > /dev/null"),
        "driver, stdout a pty (timed echo)": pty,
        "cat LOG > FILE": lambda: shell(work, f"cat {quoted} > {out}"),
        "cat LOG | tee FILE > FILE2": lambda: shell(work, f"cat {quoted} | tee {out} > {out2}"),
        "LC_ALL=C grep -E -o PATTERN LOG > FILE": lambda: shell(
            work, f"LC_ALL=C grep -E -o {shlex.quote(PATTERN.replace('(', '').replace(')', ''))}"
                  f" {quoted} > {out}"),
    }
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200.0, help="log size (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each cell")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 5 MB, 1 run each")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.repeat = 5.0, 1
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-echo-") as folder:
        work = Path(folder)
        log = work / "train.log"
        write_log(log, args.size_mb)
        size_mb = log.stat().st_size / 1e6
        skipped: list[int] = []
        cells = commands(work, log, skipped)
        times: dict[str, list[Timing]] = {label: [] for label in cells}
        for cell in cells.values():  # warm-up: page cache, bytecode
            cell()
        for _ in range(args.repeat):
            for label, cell in cells.items():
                times[label].append(cell())
    walls = {label: [w for w, _ in values] for label, values in times.items()}
    cpus = {label: [c for _, c in values] for label, values in times.items()}
    quiet, quiet_cpu = median(walls["driver --quiet"]), median(cpus["driver --quiet"])
    print(f"{size_mb:.0f} MB log, median of {args.repeat}: wall s (min..max), MB/s, / --quiet; "
          f"CPU s (children included), / --quiet")
    for label, values in walls.items():
        wall, cpu = median(values), median(cpus[label])
        print(f"  {label:<40} {wall:7.3f} ({spread(values)}) {size_mb / wall:6.0f} MB/s "
              f"{wall / quiet:5.2f}x   CPU {cpu:6.3f} {cpu / quiet_cpu:5.2f}x")
    print("  driver peak RSS (wait4: the driver and its reaped helpers): " + ", ".join(
        f"{label} {kib / 1024:.1f} MiB" for label, kib in PEAK_RSS_KIB.items()))
    print(f"  the pty was sent {size_mb - median(skipped) / 1e6:.1f} MB and skipped "
          f"{median(skipped) / 1e6:.1f} MB (median), with a note")
    ratio = median(walls["driver, stdout to a file"]) / quiet
    print_ratio("console_echo (stdout to a file / --quiet)", ratio, f"<= {TARGET:g}x",
                ratio <= TARGET)


if __name__ == "__main__":
    main()
