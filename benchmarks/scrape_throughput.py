"""Scrape throughput: the whole driver scraping a large MXNet-style log, against GNU grep.

    python benchmarks/scrape_throughput.py [--size-mb 200] [--repeat 5] [--data-dir DIR]

A generated log (``--size-mb``; about 5% of its lines are ``Epoch[E] Batch [B]\\tSpeed: ...``
lines, each epoch ends with training accuracy, time cost and validation accuracy lines, the rest
is filler) is produced by a task whose command is ``cat FILE``, with four patterns. Timed, both as
the wall time of the whole process, medians of ``--repeat`` interleaved runs:

* the driver: ``bench-driver --config ... --task-name ... --quiet --output ... --runs-dir ...``
  (start-up, the pipe, the run's ``output.log``, scraping, reduction, the record);
* the reference: ``LC_ALL=C grep -E -o -e P1 .. -e P4 FILE > FILE`` with the same patterns in ERE
  (into a file: GNU grep stops at the first match when its output is /dev/null).

Prints MB/s of both and ``RATIO scrape_throughput`` = driver / grep throughput (target >= 0.6x,
goal 1.0x); whether the driver's match counts equal grep's, per pattern; the driver's peak RSS
(``wait4`` of its process: it must stay flat, far below the log's size); and a breakdown of the
driver's costs measured in this process (pipe read, log write, scraping, start-up). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import (DATA_DIR, KIB_PER_MIB, Finished, driver_command,  # noqa: E402
                     driver_env, machine_line, median, print_ratio, run_timed, spread,
                     write_task_config)

TASK = "scrape_throughput"
GENERATOR_VERSION = 3  # bump when the log's content changes: cached logs are then regenerated
MB = 1_000_000
BATCH_LINE_SHARE = 0.05
FLAT_RSS_MIB = 100  # the driver's own ~25 MiB plus its bounded queue of output chunks (32 MiB)


@dataclass(frozen=True)
class Metric:
    """One scraped metric: the driver's Python regex, its grep ERE twin, and how grep's
    ``-o`` output lines are told apart (a literal each match of this pattern contains)."""

    name: str
    python: str
    ere: str
    marker: str
    method: str


METRICS = (
    Metric("speed", r"Speed: (\S+) samples/sec", r"Speed: [^[:space:]]+ samples/sec",
           "samples/sec", "average"),
    Metric("training_accuracy", r"^\[Epoch \d+\] training: accuracy=(\S+)",
           r"^\[Epoch [0-9]+\] training: accuracy=[^[:space:]]+", "] training: ", "last"),
    Metric("validation_accuracy", r"^\[Epoch \d+\] validation: accuracy=(\S+)",
           r"^\[Epoch [0-9]+\] validation: accuracy=[^[:space:]]+", "] validation: ", "last"),
    Metric("training_time", r"^\[Epoch \d+\] time cost: (\S+)",
           r"^\[Epoch [0-9]+\] time cost: [^[:space:]]+", "] time cost: ", "total"),
)

FILLERS = (
    "INFO:root:Iter[{i}] lr={lr:.6f} loss={a:.4f} grad_norm={b:.4f} momentum=0.9 wd=0.0001",
    "DEBUG:mxnet.io:worker {w} prefetched batch {i} in {b:.4f} s (queue {w}/16, {n} bytes)",
    "INFO:root:[{i}] data shapes (256, 3, 224, 224) label shapes (256,) kvstore=device ctx={w}",
    "DEBUG:mxnet.module:forward_backward {i}: {a:.5f} ms fwd, {b:.5f} ms bwd, sync {n} us",
    "WARNING:root:slow batch {i}: data loading {a:.3f} s > compute {b:.3f} s; increase workers",
    "INFO:root:checkpoint shard {w} of epoch state flushed: {n} params, rank {w}, step {i}",
)


def generate_log(path: Path, size_mb: float, seed: int = 0) -> tuple[int, int]:
    """Write the MXNet-style log; returns (bytes, lines). Deterministic for a given seed."""
    rng = random.Random(seed)
    pool = [rng.choice(FILLERS).format(i=rng.randrange(10**6), lr=rng.random() / 10,
                                       a=rng.random() * 10, b=rng.random() * 10,
                                       w=rng.randrange(16), n=rng.randrange(10**7))
            for _ in range(4096)]
    per_batch = round(1 / BATCH_LINE_SHARE) - 1  # filler lines between two batch lines
    target = int(size_mb * MB)
    batch_bytes = 75 + per_batch * (1 + sum(map(len, pool)) / len(pool))
    batches_per_epoch = max(10, min(1000, int(target / batch_bytes / 50)))  # >= ~50 epochs
    written = lines = epoch = 0
    with open(path, "w", encoding="ascii", newline="\n") as f:
        while written < target:
            block = []
            for batch in range(batches_per_epoch):
                block.append(f"INFO:root:Epoch[{epoch}] Batch [{batch * 20}]\tSpeed: "
                             f"{rng.uniform(800, 1200):.2f} samples/sec\t"
                             f"accuracy={rng.random():.6f}")
                start = rng.randrange(len(pool) - per_batch)
                block.extend(pool[start:start + per_batch])
            block += [f"[Epoch {epoch}] training: accuracy={rng.random():.6f}",
                      f"[Epoch {epoch}] time cost: {rng.uniform(100, 200):.3f}",
                      f"[Epoch {epoch}] validation: accuracy={rng.random():.6f}"]
            text = "\n".join(block) + "\n"
            f.write(text)
            written += len(text)
            lines += len(block)
            epoch += 1
    return written, lines


def cached_log(data_dir: Path, size_mb: float) -> Path:
    """The log for *size_mb*, generated once into *data_dir* and reused."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"mxnet_{size_mb:g}mb_v{GENERATOR_VERSION}.log"
    if not path.is_file():
        start = time.perf_counter()
        partial = path.with_suffix(".partial")
        size, lines = generate_log(partial, size_mb)
        partial.replace(path)
        print(f"generated {path} ({size / MB:.1f} MB, {lines:,} lines) in "
              f"{time.perf_counter() - start:.1f} s")
    return path


def grep_run(log: Path, out: Path, work: Path) -> Finished:
    """``LC_ALL=C grep -E -o -e P1 .. -e P4 LOG > OUT``, timed."""
    argv = ["grep", "-E", "-o"] + [a for m in METRICS for a in ("-e", m.ere)] + [str(log)]
    done = run_timed(argv, work, env={**os.environ, "LC_ALL": "C"}, stdout_path=out)
    if done.returncode != 0:
        sys.exit(f"grep failed ({done.returncode}): {done.stderr}")
    return done


def grep_counts(out: Path) -> dict[str, int]:
    """Matches per metric in grep's ``-o`` output."""
    counts = dict.fromkeys((m.name for m in METRICS), 0)
    with open(out, encoding="ascii", errors="replace") as f:
        for line in f:
            for m in METRICS:
                if m.marker in line:
                    counts[m.name] += 1
                    break
    return counts


@dataclass(frozen=True)
class DriverRun:
    """One end-to-end driver process."""

    wall_s: float
    cpu_s: float  # user + system of the driver and its command (cat)
    duration_s: float  # the command's run as the driver timed it (spawn to reaped and scraped)
    maxrss_kib: int
    counts: dict[str, int]


def driver_run(config: Path, work: Path) -> DriverRun:
    """Run the task through the whole CLI; the run directory is removed afterwards."""
    runs = work / "runs"
    argv = driver_command() + ["--config", str(config), "--task-name", TASK, "--quiet",
                               "--output", str(work / "result.json"), "--runs-dir", str(runs)]
    done = run_timed(argv, work, env=driver_env())
    if done.returncode != 0:
        sys.exit(f"the driver failed ({done.returncode}):\n{done.stderr}")
    record_path = next(runs.glob(f"{TASK}/*/record.json"))
    record = json.loads(record_path.read_text())
    shutil.rmtree(runs)  # its output.log is as large as the log
    counts = {name: m["matches"] for name, m in record["metrics"].items()}
    return DriverRun(done.wall_s, done.cpu_s, record["duration_s"], done.maxrss_kib, counts)


def breakdown(log: Path, work: Path, repeat: int) -> list[tuple[str, float]]:
    """The driver's stages one at a time in this process: (stage, median seconds)."""
    import subprocess

    from driver.config import MetricSpec
    from driver.output import CHUNK_BYTES
    from driver.scrape import Scraper

    def pipe(write_log: bool) -> float:
        start = time.perf_counter()
        proc = subprocess.Popen(["cat", str(log)], stdout=subprocess.PIPE, bufsize=0)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with open(work / "breakdown.log", "wb") as sink:
            while chunk := os.read(fd, CHUNK_BYTES):
                if write_log:
                    sink.write(chunk)
        proc.wait()
        return time.perf_counter() - start

    def scrape() -> float:
        scraper = Scraper([MetricSpec(m.name, m.python, m.method) for m in METRICS])
        busy = 0.0
        with open(log, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                start = time.perf_counter()
                scraper.feed(chunk)
                busy += time.perf_counter() - start
        start = time.perf_counter()
        scraper.close()
        return busy + time.perf_counter() - start

    stages = [("pipe read (cat | os.read 1 MiB)", lambda: pipe(False)),
              ("pipe read + write output.log", lambda: pipe(True)),
              ("Scraper.feed (regex scan + float parsing)", scrape)]
    found = [(label, median([run() for _ in range(repeat)])) for label, run in stages]
    (work / "breakdown.log").unlink(missing_ok=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200, help="log size (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="where the generated log is cached (default benchmarks/.data)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-stage costs")
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: a 2 MB log, one run each (numbers are meaningless)")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.repeat = 2, 1
    print(machine_line())
    log = cached_log(args.data_dir.resolve(), args.size_mb)
    size_mb = log.stat().st_size / MB
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as folder:
        work = Path(folder)
        config = work / "task_config.toml"
        write_task_config(config, TASK, f"cat {shlex.quote(str(log))}",
                          [(m.name, m.python, m.method) for m in METRICS])
        grep_out = work / "grep.out"
        grep_run(log, grep_out, work)  # warm-up: the log in the page cache, grep's counts
        expected = grep_counts(grep_out)
        first = driver_run(config, work)  # warm-up: bytecode, the driver's counts
        greps, drivers = [], []
        for _ in range(args.repeat):  # interleaved, so that load changes hit both alike
            greps.append(grep_run(log, grep_out, work))
            drivers.append(driver_run(config, work))
        stages = [] if args.no_breakdown else breakdown(log, work, args.repeat)
    report(size_mb, greps, drivers, expected, first, stages)


def report(size_mb: float, greps: list[Finished], drivers: list[DriverRun],
           expected: dict[str, int], first: DriverRun, stages: list[tuple[str, float]]) -> None:
    grep_s = median([g.wall_s for g in greps])
    driver_s = median([d.wall_s for d in drivers])
    inside_s = median([d.duration_s for d in drivers])
    print(f"log: {size_mb:.1f} MB, 4 patterns, {len(greps)} timed runs each (medians; min..max)")
    print(f"  grep -E -o (LC_ALL=C)   {grep_s:7.3f} s  {size_mb / grep_s:8.1f} MB/s  "
          f"({spread([g.wall_s for g in greps])} s; CPU {median([g.cpu_s for g in greps]):.3f} s)")
    driver_cpu_s = median([d.cpu_s for d in drivers])
    print(f"  bench-driver, whole     {driver_s:7.3f} s  {size_mb / driver_s:8.1f} MB/s  "
          f"({spread([d.wall_s for d in drivers])} s; CPU {driver_cpu_s:.3f} s, cat included)")
    print(f"    of which the command's run (record duration_s) {inside_s:.3f} s "
          f"({size_mb / inside_s:.1f} MB/s); start-up and finishing {driver_s - inside_s:.3f} s")
    ratio = grep_s / driver_s  # throughput ratio = inverse time ratio
    print_ratio("scrape_throughput (driver MB/s / grep MB/s)", ratio, ">= 0.6x, goal 1.0x",
                ratio >= 0.6)
    print("match counts, driver vs grep:")
    same = True
    for name, count in expected.items():
        runs = {d.counts.get(name) for d in [first, *drivers]}
        ok = runs == {count}
        same &= ok
        print(f"  {name:<20} grep {count:>9,}  driver {', '.join(f'{c:,}' for c in runs):>9}  "
              f"{'equal' if ok else 'DIFFERENT'}")
    print(f"counts equal: {'PASS' if same else 'FAIL'}")
    peaks = [d.maxrss_kib / KIB_PER_MIB for d in drivers]
    print(f"driver peak RSS (wait4 of its process, its children included): median "
          f"{median(peaks):.1f} MiB ({spread(peaks, '{:.1f}')}) for a {size_mb:.0f} MB log: "
          f"{'bounded' if median(peaks) < FLAT_RSS_MIB else 'ABOVE'} (< {FLAT_RSS_MIB} MiB)")
    if stages:
        print("breakdown, each stage alone in this process (medians):")
        for label, seconds in stages:
            print(f"  {label:<44} {seconds:7.3f} s  {size_mb / seconds:8.1f} MB/s")


if __name__ == "__main__":
    main()
