"""timeline.png: drawn for long runs (or with --plot always), and on demand by `plot`."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import script


def test_run_draws_its_timeline(write_config, cli):
    write_config(f"""
        [tasks.mem]
        command_to_execute = "{{python}} {script('hold_memory.py')} 50 2.5"
        patterns = ['speed: (\\S+)']
        metrics = ['speed']
        compute_method = ['last']
    """)
    run = cli("--task-name", "mem", "--plot", "always")
    assert run.returncode == 0, run.stderr
    run_dir = run.cwd / run.record["run_dir"]
    rows = list(csv.DictReader(open(run_dir / "timeline.csv")))
    assert len(rows) >= 10 and max(float(r["cpu_rss_mib"]) for r in rows) >= 50
    image = Path(run_dir / "timeline.png").read_bytes()
    assert image.startswith(b"\x89PNG")


def test_short_runs_are_not_drawn_automatically_but_plot_draws_on_demand(write_config, cli):
    write_config("[tasks.t]\ncommand_to_execute = 'echo hi'\n")
    run = cli("--task-name", "t")
    run_dir = run.cwd / run.record["run_dir"]
    assert not (run_dir / "timeline.png").exists()
    drawn = cli("plot", str(run_dir))
    assert drawn.returncode == 0, drawn.stderr
    assert (run_dir / "timeline.png").read_bytes().startswith(b"\x89PNG")
