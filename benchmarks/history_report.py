"""The history's costs: writing the report from 10,000 history rows, and what recording costs a run.

    python benchmarks/history_report.py [--rows 10000] [--repeat 7] [--quick]

Timed, medians of ``--repeat`` interleaved runs (the machine is noisy: read the ratios):

* ``bench-driver report`` on a history of ``--rows`` runs (20 series: 10 tasks x 2 metrics, with
  a step in some), against the reference ``sqlite3``: the same rows read by one plain
  ``SELECT`` in a fresh interpreter (what any report must at least do). ``RATIO
  history_report_over_select`` (target: under 20x).
* the driver's trivial run (the task runs ``true``) with the history against the same run with
  ``--no-history``: the difference in milliseconds is the history's cost per run (sqlite3
  imported, the database opened, one transaction, closed). ``RATIO history_run_overhead`` (target:
  under 1.10x). Both with a warmed bytecode cache, as an installed driver has.

With ``--detection`` it also prints how the detection (plugins.history.check) behaves on
simulated histories: false alarms per check on pure noise (normal, and Student t with 3 degrees
of freedom) at several ``--z`` limits, and how often a 10% and a 20% step is found at its first
point (noise 3%, a window of 20). The figures docs/history.md quotes. Asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the driver, when not installed

from _common import (bytecode_cached_env, driver_command, machine_line, median,  # noqa: E402
                     print_ratio, run_timed, spread, write_task_config)

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SELECT = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
          "rows = db.execute('SELECT * FROM runs JOIN run_values ON run_id = id').fetchall(); "
          "print(len(rows))")


def build_history(path: Path, rows: int) -> None:
    """*rows* runs, 10 tasks x 2 metrics, an hour apart, noise 3%, a 25% step in task0 late on."""
    from driver.reduce import MetricResult
    from driver.results import RunRecord
    from plugins.history.store import open_history

    rng = random.Random(0)
    with open_history(path) as history:
        for i in range(rows):
            task, n = f"task{i % 10}", i // 10
            level = 75.0 if task == "task0" and n > rows // 12 else 100.0
            values = {"speed": rng.gauss(level, 3.0), "epoch_time": rng.gauss(10.0, 0.3)}
            when = (START + timedelta(minutes=i)).isoformat(timespec="milliseconds")
            history.add_run(RunRecord(
                task, "true", "ok", 0, when, when, 1.0, str(path.parent / "runs" / str(i)),
                tuple(MetricResult(k, v, "last", 1, 1) for k, v in values.items()),
                environment={"git_commit": f"{n:040x}", "host": "bench"}))


def time_report(work: Path, db: Path, repeat: int) -> None:
    env = bytecode_cached_env(work / "pycache")
    report = driver_command() + ["report", "--db", str(db), "-o", str(work / "out")]
    select = [sys.executable, "-c", SELECT, str(db)]
    run_timed(report, work, env)  # warm the bytecode cache
    report_s, select_s = [], []
    for _ in range(repeat):
        done = run_timed(report, work, env)
        assert done.returncode == 0, done.stderr
        report_s.append(done.wall_s)
        select_s.append(run_timed(select, work, env).wall_s)
    size_kib = (work / "out" / "index.html").stat().st_size / 1024
    print(f"report of {db.stat().st_size / 2**20:.1f} MiB history: {median(report_s):.3f} s "
          f"(spread {spread(report_s)}); page {size_kib:.0f} KiB; plain SELECT of the rows: "
          f"{median(select_s):.3f} s (spread {spread(select_s)})")
    ratio = median(report_s) / median(select_s)
    print_ratio("history_report_over_select", ratio, "< 20x", ratio < 20)


def time_run_cost(work: Path, repeat: int) -> None:
    config = work / "task_config.toml"
    write_task_config(config, "trivial", "true", [("speed", r"^speed: (\S+)", "last")],
                      optional=["speed"])
    env = bytecode_cached_env(work / "pycache")
    base = driver_command() + ["--config", str(config), "--task-name", "trivial", "--quiet",
                               "--runs-dir", str(work / "runs"), "--plot", "never"]
    with_s, without_s, with_cpu, without_cpu = [], [], [], []
    run_timed(base, work, env)
    for _ in range(repeat):
        on, off = run_timed(base, work, env), run_timed(base + ["--no-history"], work, env)
        with_s.append(on.wall_s)
        without_s.append(off.wall_s)
        with_cpu.append(on.cpu_s)
        without_cpu.append(off.cpu_s)
    delta_ms = (median(with_s) - median(without_s)) * 1000
    cpu_ms = (median(with_cpu) - median(without_cpu)) * 1000
    print(f"trivial run: {median(with_s) * 1000:.1f} ms with the history (spread "
          f"{spread(with_s)}), {median(without_s) * 1000:.1f} ms with --no-history (spread "
          f"{spread(without_s)}): the history costs {delta_ms:.1f} ms per run (CPU time, less "
          f"sensitive to load: {cpu_ms:.1f} ms)")
    ratio = median(with_s) / median(without_s)
    print_ratio("history_run_overhead", ratio, "< 1.10x", ratio < 1.10)


def simulate_detection(trials: int) -> None:
    """False alarms on noise and power on steps of the real detection code, seeded."""
    from dataclasses import replace

    from plugins.history.check import CheckOptions, judge
    from plugins.history.store import Point

    rng = random.Random(0)

    def verdict(values: list[float], options: CheckOptions) -> str:
        points = [Point("t", "t", "speed", str(i), v, v, v, 1, (v,), None, None, None, None,
                        "run", "") for i, v in enumerate(values)]
        return judge("t.speed", points[:-1], points[-1], options).verdict

    def t3() -> float:
        return rng.gauss(0, 1) / (sum(rng.gauss(0, 1) ** 2 for _ in range(3)) / 3) ** 0.5

    for name, draw in (("normal", lambda: rng.gauss(0, 1)), ("t3", t3)):
        for z in (3.0, 4.0, 5.0):
            options = replace(CheckOptions(), z_threshold=z)
            alarms = sum(verdict([100 + 3 * draw() for _ in range(21)], options) ==
                         "regression" for _ in range(trials))
            print(f"detection: {name} noise, scale 3%, z > {z:g}: {alarms} false alarm(s) in "
                  f"{trials} checks ({alarms / trials * 10_000:.1f} per 10,000)")
    for step in (0.10, 0.20):
        found = sum(verdict([rng.gauss(100, 3) for _ in range(20)] +
                            [rng.gauss(100 * (1 - step), 3)], CheckOptions()) == "regression"
                    for _ in range(trials // 10))
        print(f"detection: a {step:.0%} step, noise 3%: found {found / (trials // 10):.1%} "
              f"of {trials // 10} times at its first point")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="history rows (default 10000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each (default 7)")
    parser.add_argument("--quick", action="store_true", help="200 rows, 2 repeats (smoke test)")
    parser.add_argument("--detection", type=int, nargs="?", const=20_000, metavar="TRIALS",
                        help="also simulate the detection (default 20000 checks per case)")
    args = parser.parse_args(argv)
    rows, repeat = (200, 2) if args.quick else (args.rows, args.repeat)
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_history(work / "history.sqlite", rows)
        print(f"history: {rows} runs, 20 series")
        time_report(work, work / "history.sqlite", repeat)
        time_run_cost(work, repeat)
    if args.detection:
        simulate_detection(args.detection)
    return 0


if __name__ == "__main__":
    sys.exit(main())
