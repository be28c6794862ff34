"""Scrape throughput: the whole driver scraping a large MXNet-style log, against GNU grep and
against the old driver's own data path, for four pattern sets and four consoles.

    python benchmarks/scrape_throughput.py [--size-mb 200 | --one-gb] [--repeat 5]
        [--sets abcd] [--consoles quiet,file,pipe,pty] [--data-dir DIR] [--no-breakdown]

The log and the pattern sets are described in benchmarks/_scrape_sets.py: (a) the old driver's
own four patterns as ``convert-cfg`` gives them, (b) four anchored ones, (c) 20 unanchored ones
from the old config, (d) one pattern shared by 8 metrics. Each cell is timed end to end, as the
wall time of the whole process, medians of ``--repeat`` interleaved runs:

* the driver: ``bench-driver --config ... --task-name ...`` on the task ``cat LOG``, with the echo
  on as users run it and a warm bytecode cache as an installed driver has, its standard output
  going to one of the consoles: ``quiet`` (``--quiet``,
  no echo), ``file`` (a file, as CI captures it), ``pipe`` (a pipe read by ``cat > /dev/null``),
  ``pty`` (a pseudo-terminal read by ``cat``: the driver sees a terminal and echoes with elapsed
  times);
* grep: ``LC_ALL=C grep -E -o -e P1 .. -e Pn LOG > FILE`` with the same distinct patterns in ERE
  (into a file: GNU grep stops at the first match when its output is /dev/null);
* the old driver's data path, reimplemented here as it was (utils/metrics_manager.py of
  awslabs/deeplearning-benchmark): the command's stdout straight to a file, the whole file read
  and decoded, ``re.findall`` per pattern, ``re.findall`` + ``eval`` per number. Only its data
  path: not its numpy import nor its memory profiler, so it is if anything timed fast; a pattern
  that matches nothing is skipped (the old driver raised and lost every metric); an anchored
  pattern gets ``(?m)``, without which the old driver's ``^`` matched the log's first line only.

Prints every cell (seconds, MB/s, the ratio to grep and to the old path, the driver's peak RSS
from ``wait4``), one ``RATIO`` line per target, and the driver's match counts against grep's per
pattern for every run: if any differs it says so loudly and exits 1 (the only non-zero exit).
Then, unless ``--no-breakdown``, the scraper alone in this process (``Scraper.scan_lines`` over a
memory map of the log) with each prefilter engine, to show where the time goes, and (d)'s pattern
feeding 8 metrics against it feeding one (``RATIO shared_pattern_8_metrics_over_1``).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import (DATA_DIR, KIB_PER_MIB, bytecode_cached_env, driver_command,  # noqa: E402
                     machine_line, median, print_ratio, run_timed, spread, write_task_config)
from _scrape_sets import MB, PatternSet, cached_log, ere, pattern_sets  # noqa: E402

TASK = "scrape_throughput"
CONSOLES = ("quiet", "file", "pipe", "pty")
FLAT_RSS_MIB = 100  # the driver's own ~25 MiB plus bounded buffers, whatever the log's size
GREP_TARGET = {"quiet": 1.0, "file": 1.0, "pipe": 1.0, "pty": 0.8}  # x grep, sets a, b, c
OLD_TARGET = 3.0  # x the old driver's path, every cell
SHARED_TARGET = 1.5  # (d) within 1.5x of (a)
EIGHT_OVER_ONE = 2.0  # one pattern feeding 8 metrics within 2x of it feeding one

OLD_DRIVER_PATH = r'''
import json, re, subprocess, sys
NUMERIC_PATTERN = r"(\d+\.\d+|\d+)"

def get_float_number(s):
    matches = re.findall(NUMERIC_PATTERN, s)
    if len(matches) == 1:
        return eval(re.findall(NUMERIC_PATTERN, s)[0])
    raise ValueError("Can not find number in the located metric pattern.")

def compute(method, metric):
    if method == "average":
        return 1.0 * sum(metric) / len(metric)
    if method == "last":
        return metric[-1]
    if method == "total":
        return sum(metric)
    raise ValueError(method)

spec = json.load(open(sys.argv[1]))
log_file = open(spec["log"], "a")
process = subprocess.Popen(spec["command"], shell=True, stdout=log_file,
                           stderr=subprocess.STDOUT, universal_newlines=True)
process.communicate()
log_file.close()
with open(spec["log"], "rb") as f:
    log = f.read().decode("utf-8")
counts, results = {}, {}
for name, pattern, method in spec["metrics"]:
    metric = re.findall(pattern, log)
    counts[name] = len(metric)
    if metric:
        results[name] = compute(method, list(map(get_float_number, metric)))
json.dump({"counts": counts, "results": results}, open(spec["out"], "w"))
'''


@dataclass
class Cell:
    """The timed runs of one (pattern set, side) pair."""

    walls: list[float] = field(default_factory=list)
    peaks_mib: list[float] = field(default_factory=list)
    counts: list[dict[str, int]] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        """The median wall time."""
        return median(self.walls)


class Bench:
    """One pattern set: its config, its grep argv, and every cell's runs."""

    def __init__(self, pset: PatternSet, log: Path, work: Path) -> None:
        self.pset = pset
        self.log = log
        self.work = work / pset.key
        self.work.mkdir()
        self.config = self.work / "task_config.toml"
        write_task_config(self.config, TASK, f"cat {shlex.quote(str(log))}",
                          [(m.name, m.pattern, m.method) for m in pset.metrics],
                          optional=[m.name for m in pset.metrics])  # counts are checked below
        self.cells: dict[str, Cell] = {}
        self.grep_counts: dict[str, int] = {}

    def cell(self, side: str) -> Cell:
        """The runs of *side* (``grep``, ``old`` or a console)."""
        return self.cells.setdefault(side, Cell())

    def run(self, side: str, timed: bool = True) -> None:
        """One run of *side*; kept unless it is a warm-up.

        Every run starts with nothing left to write back: each driver run writes a 200 MB
        output.log (and the file console 200 MB more), and the kernel writing that back during
        the next run charged whichever cell came next (the pipe console, after the file one:
        0.85x grep in the matrix, 1.25x-1.6x when run first)."""
        os.sync()
        wall, peak, counts = (self._grep() if side == "grep" else self._old() if side == "old"
                              else self._driver(side))
        if timed:
            cell = self.cell(side)
            cell.walls.append(wall)
            cell.peaks_mib.append(peak)
            cell.counts.append(counts)

    def _grep(self) -> tuple[float, float, dict[str, int]]:
        out = self.work / "grep.out"
        argv = ["grep", "-E", "-o"] + [a for p in self.pset.patterns for a in ("-e", ere(p))]
        done = run_timed(argv + [str(self.log)], self.work, env={**os.environ, "LC_ALL": "C"},
                         stdout_path=out)
        if done.returncode != 0:
            sys.exit(f"grep failed ({done.returncode}): {done.stderr}")
        if not self.grep_counts:
            self.grep_counts = grep_counts(out, self.pset)
        out.unlink()
        return done.wall_s, done.maxrss_kib / KIB_PER_MIB, self.grep_counts

    def _old(self) -> tuple[float, float, dict[str, int]]:
        script, spec = self.work / "old_driver_path.py", self.work / "old_spec.json"
        log, out = self.work / "old_driver.log", self.work / "old_out.json"
        script.write_text(OLD_DRIVER_PATH)
        spec.write_text(json.dumps({
            "command": f"cat {shlex.quote(str(self.log))}", "log": str(log), "out": str(out),
            "metrics": [(m.name, old_twin(m.pattern), m.method) for m in self.pset.metrics]}))
        log.unlink(missing_ok=True)  # it appends: a second run would double the log
        done = run_timed([sys.executable, str(script), str(spec)], self.work)
        if done.returncode != 0:
            sys.exit(f"the old driver's path failed ({done.returncode}):\n{done.stderr}")
        log.unlink()
        return done.wall_s, done.maxrss_kib / KIB_PER_MIB, json.loads(out.read_text())["counts"]

    def _driver(self, console: str) -> tuple[float, float, dict[str, int]]:
        runs = self.work / "runs"
        argv = driver_command() + ["--config", str(self.config), "--task-name", TASK,
                                   "--output", str(self.work / "result.json"),
                                   "--runs-dir", str(runs)] + (["--quiet"] * (console == "quiet"))
        done = run_console(argv, self.work, console, bytecode_cached_env(self.work / "pycache"))
        if done.returncode != 0:
            sys.exit(f"the driver failed ({done.returncode}) on {console}:\n{done.stderr}")
        record = json.loads(next(runs.glob(f"{TASK}/*/record.json")).read_text())
        shutil.rmtree(runs)  # its output.log is as large as the log
        counts = {name: m["matches"] for name, m in record["metrics"].items()}
        return done.wall_s, done.maxrss_kib / KIB_PER_MIB, counts


def old_twin(pattern: str) -> str:
    """The pattern as the old driver needed it: it searched the whole log without re.MULTILINE,
    where ``^`` anchors only the log's first line (it found 1 of (b)'s 115,000 speed lines)."""
    return "(?m)" + pattern if pattern.startswith("^") else pattern


def run_console(argv: list[str], work: Path, console: str, env: dict[str, str]):
    """Run the driver with its standard output on *console*, timed to the driver's exit
    (returns _common.Finished)."""
    if console in ("quiet", "file"):
        return run_timed(argv, work, env, stdout_path=work / "console.txt")
    if console == "pipe":
        reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert reader.stdin is not None
        try:
            return run_timed(argv, work, env, stdout_fd=reader.stdin.fileno())
        finally:
            reader.stdin.close()
            reader.wait()
    main, terminal = os.openpty()  # a terminal emulator: cat reads what the driver shows
    reader = subprocess.Popen(["cat"], stdin=main, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.close(main)
    try:
        return run_timed(argv, work, env, stdout_fd=terminal)
    finally:
        os.close(terminal)  # the last writer gone: cat reads EIO and ends
        reader.wait()


def grep_counts(out: Path, pset: PatternSet) -> dict[str, int]:
    """Matches per metric in grep's ``-o`` output: each line belongs to the first distinct
    pattern it matches in full (a line no pattern matches is counted under ``?``)."""
    import re

    compiled = [re.compile(p) for p in pset.patterns]
    per_pattern = dict.fromkeys(range(len(compiled)), 0)
    order = list(range(len(compiled)))
    unknown = 0
    with open(out, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            hit = next((k for k in order if compiled[k].fullmatch(line)), None)
            if hit is None:
                unknown += 1
                continue
            per_pattern[hit] += 1
            order.remove(hit)
            order.insert(0, hit)  # most lines are of the few frequent patterns
    index = {p: k for k, p in enumerate(pset.patterns)}
    counts = {m.name: per_pattern[index[m.pattern]] for m in pset.metrics}
    return counts | ({"?": unknown} if unknown else {})


def breakdown(log: Path, psets: list[PatternSet], repeat: int) -> list[tuple[str, str, float]]:
    """The scraper alone on the whole log in this process: (set, engine, median seconds)."""
    from driver.config import MetricSpec
    from driver.prefilter import hyperscan_available
    from driver.scrape import Scraper

    engines = ["hyperscan", "python"] if hyperscan_available() else ["python"]
    found = []
    alone = [s for s in psets if s.key == "d"]  # (d)'s pattern feeding one metric, for 8 vs 1
    psets = psets + [PatternSet("d1", "", s.metrics[:1]) for s in alone]
    with open(log, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        for pset in psets:
            specs = [MetricSpec(m.name, m.pattern, m.method) for m in pset.metrics]
            for engine in engines:
                times = [scrape_alone(view, Scraper(specs, prefilter=engine))
                         for _ in range(repeat)]
                found.append((pset.key, engine, median(times)))
    return found


def scrape_alone(view: mmap.mmap, scraper) -> float:  # scraper: driver.scrape.Scraper
    """Seconds to scrape the mapped log in 1 MiB steps of whole lines, as the driver reads it."""
    start, size, step = 0, len(view), 1 << 20
    began = time.perf_counter()
    while start < size:
        end = view.rfind(b"\n", start, min(size, start + step)) + 1 or size
        scraper.scan_lines(view, start, end)
        start = end
    scraper.close()
    return time.perf_counter() - began


def main() -> None:
    args = parse_args()
    print(machine_line())
    log = cached_log(args.data_dir.resolve(), args.size_mb)
    size_mb = log.stat().st_size / MB
    sets = [s for k, s in pattern_sets().items() if k in args.sets]
    sides = ["grep", "old", *args.consoles]
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as folder:
        benches = [Bench(pset, log, Path(folder)) for pset in sets]
        for bench in benches if not args.quick else []:  # warm-up: page cache, bytecode
            for side in sides:
                bench.run(side, timed=False)
        for _ in range(args.repeat):  # interleaved, so that load changes hit every cell alike
            for bench in benches:
                for side in sides:
                    bench.run(side)
    stages = [] if args.no_breakdown else breakdown(log, sets, max(1, min(args.repeat, 3)))
    same = report(size_mb, benches, args.consoles, stages)
    if not same:
        sys.exit("FAIL: the driver's match counts differ from grep's (see above)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200, help="log size (default 200)")
    parser.add_argument("--one-gb", action="store_true",
                        help="a 1 GB log, one run per cell (the flat-RSS check)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per cell (5)")
    parser.add_argument("--sets", default="abcd", help="pattern sets to run (default abcd)")
    parser.add_argument("--consoles", default=",".join(CONSOLES),
                        help=f"consoles to run (default {','.join(CONSOLES)})")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="where the generated log is cached (default benchmarks/.data)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the scraper alone")
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: a 2 MB log, one run each (numbers are meaningless)")
    args = parser.parse_args()
    args.consoles = [c for c in args.consoles.split(",") if c]
    unknown = sorted(set(args.consoles) - set(CONSOLES)) + sorted(set(args.sets) - set("abcd"))
    if unknown:
        parser.error(f"unknown console or set {unknown}; consoles {CONSOLES}, sets abcd")
    if args.one_gb:
        args.size_mb, args.repeat = 1000, args.repeat or 1
    if args.quick:
        args.size_mb, args.repeat = 2, 1
    args.repeat = args.repeat or 5
    return args


def report(size_mb: float, benches: list[Bench], consoles: list[str],
           stages: list[tuple[str, str, float]]) -> bool:
    """Print the matrix, the ratio lines and the count check; True when every count agrees."""
    runs = len(benches[0].cell("grep").walls)
    print(f"log: {size_mb:.1f} MB; medians of {runs} interleaved runs (min..max)")
    for bench in benches:
        print_set(bench, size_mb, consoles)
    print_targets(benches, consoles)
    same = print_counts(benches)
    print_rss(benches, consoles, size_mb)
    if stages:
        print("the scraper alone in this process (Scraper.scan_lines over a memory map, 1 MiB "
              "steps; medians):")
        for key, engine, seconds in stages:
            print(f"  ({key}) prefilter {engine:<10} {seconds:7.3f} s  "
                  f"{size_mb / seconds:8.1f} MB/s" + ("  (d's pattern, 1 metric)" * (key == "d1")))
        times = {(key, engine): seconds for key, engine, seconds in stages}
        engine = stages[0][1]
        if ("d", engine) in times:
            ratio = times["d", engine] / times["d1", engine]
            print_ratio("shared_pattern_8_metrics_over_1", ratio, f"<= {EIGHT_OVER_ONE}x",
                        ratio <= EIGHT_OVER_ONE)
    return same


def print_set(bench: Bench, size_mb: float, consoles: list[str]) -> None:
    grep, old = bench.cell("grep"), bench.cell("old")
    print(f"({bench.pset.key}) {bench.pset.title}")
    for label, cell in (("grep -E -o (LC_ALL=C)", grep), ("old driver's data path", old)):
        print(f"  {label:<24} {cell.wall_s:7.3f} s ({spread(cell.walls)}) "
              f"{size_mb / cell.wall_s:7.1f} MB/s")
    for console in consoles:
        cell = bench.cell(console)
        print(f"  driver, console {console:<8} {cell.wall_s:7.3f} s ({spread(cell.walls)}) "
              f"{size_mb / cell.wall_s:7.1f} MB/s  {grep.wall_s / cell.wall_s:5.2f}x grep  "
              f"{old.wall_s / cell.wall_s:5.2f}x old  RSS {median(cell.peaks_mib):5.1f} MiB")


def print_targets(benches: list[Bench], consoles: list[str]) -> None:
    by_key = {b.pset.key: b for b in benches}
    for bench in benches:
        key, grep_s = bench.pset.key, bench.cell("grep").wall_s
        for console in consoles:
            driver_s = bench.cell(console).wall_s
            if key in "abc":
                ratio, target = grep_s / driver_s, GREP_TARGET[console]
                print_ratio(f"scrape_vs_grep_{key}_{console}", ratio, f">= {target}x",
                            ratio >= target)
            ratio = bench.cell("old").wall_s / driver_s
            print_ratio(f"scrape_vs_old_{key}_{console}", ratio, f">= {OLD_TARGET}x",
                        ratio >= OLD_TARGET)
    if "a" in by_key and "d" in by_key:
        for console in consoles:
            ratio = by_key["d"].cell(console).wall_s / by_key["a"].cell(console).wall_s
            print_ratio(f"shared_pattern_d_over_a_{console}", ratio,
                        f"<= {SHARED_TARGET}x", ratio <= SHARED_TARGET)


def print_counts(benches: list[Bench]) -> bool:
    """Every driver run's counts against grep's, per metric; True when all are equal."""
    print("match counts, driver (every run, every console) vs grep:")
    all_same = True
    for bench in benches:
        expected = bench.grep_counts
        for metric in bench.pset.metrics:
            seen = {counts.get(metric.name) for side, cell in bench.cells.items()
                    if side not in ("grep", "old") for counts in cell.counts}
            old = {counts.get(metric.name) for counts in bench.cell("old").counts}
            same = seen == {expected.get(metric.name)}
            all_same &= same
            print(f"  ({bench.pset.key}) {metric.name:<22} grep {expected.get(metric.name, 0):>9,}"
                  f"  driver {', '.join(f'{c:,}' for c in seen if c is not None):>9}"
                  f"  old path {', '.join(f'{c:,}' for c in old if c is not None):>9}  "
                  f"{'equal' if same else 'DIFFERENT !!!'}")
        if expected.get("?"):
            all_same = False
            print(f"  ({bench.pset.key}) {expected['?']:,} lines of grep's output match no "
                  "pattern in full: DIFFERENT !!!")
    print(f"counts equal: {'PASS' if all_same else 'FAIL !!! THE DRIVER MISCOUNTED'}")
    return all_same


def print_rss(benches: list[Bench], consoles: list[str], size_mb: float) -> None:
    """The driver's peak RSS per console, the worst of every set and run."""
    print(f"driver peak RSS (wait4 of its process, its children included), {size_mb:.0f} MB log, "
          f"must stay flat (< {FLAT_RSS_MIB} MiB):")
    for console in consoles:
        peaks = [p for b in benches for p in b.cell(console).peaks_mib]
        worst = max(peaks)
        print(f"  console {console:<6} median {median(peaks):6.1f} MiB, max {worst:6.1f} MiB: "
              f"{'PASS' if worst < FLAT_RSS_MIB else 'FAIL'}")


if __name__ == "__main__":
    main()
