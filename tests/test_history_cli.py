"""End to end: runs, sets and experiments reach the history through the real CLI; switching it
off; ``history`` shows values, ``history import`` brings old results in, idempotently."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

LONG = "validation_top1_accuracy_after_the_last_epoch_of_the_longest_schedule"
CONFIG = f"""
[tasks.toy]
command_to_execute = "{{python}} toy.py {{seed}}"
patterns = ['^speed: (\\S+)', '^{LONG}: (\\S+)']
metrics = ['speed', '{LONG}']
compute_method = ['last', 'last']
[experiments.sizes]
task = "toy"
repetitions = 2
matrix = {{ size = ["small", "large"] }}
[tasks.toy.params]
size = "small"
"""


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


TOY = f"""import sys
print(f"speed: {{sys.argv[1]}}.5")
print("{LONG}: 0.75")
"""


@pytest.fixture
def toy(tmp_path: Path, write_config) -> Path:
    (tmp_path / "toy.py").write_text(TOY)
    return write_config(CONFIG)


def test_every_run_is_appended_and_shown_with_names_in_full(tmp_path: Path, toy, cli) -> None:
    for seed in ("1", "2"):
        assert cli("--task-name", "toy", "--seed", seed, "--quiet").returncode == 0
    db = tmp_path / "bench-runs" / "history.sqlite"
    assert rows(db, "SELECT task, status, set_id FROM runs") == [("toy", "ok", None)] * 2
    environment = json.loads(rows(db, "SELECT environment FROM runs")[0][0])
    assert environment["host"] and "git_commit" in environment
    shown = cli("history", "toy", "--metric", "speed")
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[3] for line in shown.stdout.splitlines()[1:]] == ["1.5", "2.5"]
    assert f"toy.{LONG}" in cli("history").stdout


def test_a_set_run_through_workers_is_written_once_by_the_launcher(tmp_path: Path, toy,
                                                                   cli) -> None:
    done = cli("--task-name", "toy", "--repetitions", "3", "-j", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    db = tmp_path / "bench-runs" / "history.sqlite"
    assert rows(db, "SELECT count(*), count(set_id), min(kind) FROM runs") == \
        [(3, 3, "repetition")]
    assert rows(db, "SELECT label, repetitions FROM sets") == [("toy", 3)]
    shown = cli("history", "toy", "--metric", "speed").stdout.splitlines()
    assert len(shown) == 2 and shown[1].split()[4:6] == ["0.5..2.5", "3"]


def test_an_experiment_is_recorded_with_its_variants(tmp_path: Path, toy, cli) -> None:
    assert cli("experiment", "sizes", "--quiet").returncode == 0
    db = tmp_path / "bench-runs" / "history.sqlite"
    assert rows(db, "SELECT name, task FROM experiments") == [("sizes", "toy")]
    assert sorted(r[0] for r in rows(db, "SELECT label FROM sets")) == \
        ["sizes/size=large", "sizes/size=small"]
    assert rows(db, "SELECT count(*) FROM runs WHERE set_id IS NOT NULL") == [(4,)]


def test_no_history_and_the_config_switch_turn_it_off(tmp_path: Path, toy, write_config,
                                                      cli) -> None:
    assert cli("--task-name", "toy", "--quiet", "--no-history").returncode == 0
    assert not (tmp_path / "bench-runs" / "history.sqlite").exists()
    write_config(CONFIG + "[history]\nenabled = false\n")
    assert cli("--task-name", "toy", "--quiet").returncode == 0
    assert not (tmp_path / "bench-runs" / "history.sqlite").exists()
    write_config(CONFIG + "[history]\npath = \"keep/runs.sqlite\"\n")
    assert cli("--task-name", "toy", "--quiet").returncode == 0
    assert rows(tmp_path / "keep" / "runs.sqlite", "SELECT count(*) FROM runs") == [(1,)]


def test_a_bad_history_table_is_refused_before_anything_runs(tmp_path: Path, toy,
                                                             write_config, cli) -> None:
    write_config(CONFIG + "[history]\nenable = false\n")
    done = cli("--task-name", "toy", "--quiet")
    assert done.returncode == 3
    assert "[history]: unknown key 'enable' (did you mean 'enabled'?)" in done.stderr
    assert not (tmp_path / "bench-runs").exists()


def test_import_brings_in_runs_sets_and_flat_files_once(tmp_path: Path, toy, cli) -> None:
    assert cli("--task-name", "toy", "--quiet", "--no-history").returncode == 0
    assert cli("--task-name", "toy", "--repetitions", "2", "--quiet",
               "--no-history").returncode == 0
    old = tmp_path / "old"
    old.mkdir()
    (old / "dlbenchmark_result.json").write_text(json.dumps(
        {"mxnet.resnet.speed": 812.5, "mxnet.resnet.gpu_memory": 1024}))
    (old / "notes.json").write_text(json.dumps({"not": "a result"}))
    for attempt in range(2):
        done = cli("history", "import", "bench-runs", "old")
        assert done.returncode == 0, done.stderr
        assert "bench-runs: 1 run(s), 1 set(s), 0 experiment(s)" in done.stdout
        assert "old: 0 run(s), 0 set(s), 0 experiment(s), 1 flat result file(s)" in done.stdout
        db = tmp_path / "bench-runs" / "history.sqlite"
        assert rows(db, "SELECT count(*) FROM runs") == [(4,)]  # 1 + 2 in the set + 1 flat
        assert rows(db, "SELECT count(*) FROM sets") == [(1,)]
    shown = cli("history", "mxnet.resnet").stdout
    assert "mxnet.resnet.speed" in shown and "812.5" in shown


def test_history_names_what_it_has_when_a_task_is_unknown(tmp_path: Path, toy, cli) -> None:
    assert cli("--task-name", "toy", "--quiet").returncode == 0
    done = cli("history", "tyo")
    assert done.returncode == 3
    assert "no values for tyo (did you mean 'toy'?); recorded: toy" in done.stderr
    assert cli("history", "--since", "1d").returncode == 0
    late = cli("history", "--since", "2999-01-01")
    assert late.returncode == 3 and "since 2999-01-01" in late.stderr
    bad = cli("history", "--since", "yesterday")
    assert bad.returncode == 3 and "expected a date like 2026-12-01" in bad.stderr


def test_reading_commands_refuse_a_missing_history(tmp_path: Path, cli) -> None:
    for command in (("history",), ("history", "check"), ("report",)):
        done = cli(*command)
        assert done.returncode == 3 and "no history here" in done.stderr, command


def test_a_history_that_cannot_be_written_is_refused_before_the_run(tmp_path: Path, toy,
                                                                    cli) -> None:
    (tmp_path / "taken.sqlite").mkdir()  # a directory where the database would go
    done = cli("--task-name", "toy", "--quiet", "--history-db", "taken.sqlite")
    assert done.returncode == 3, done.stderr
    assert "--history-db" in done.stderr and "taken.sqlite" in done.stderr
    assert not (tmp_path / "bench-runs").exists()


def test_a_history_that_fails_during_the_run_keeps_the_run_and_says_so(tmp_path: Path, toy,
                                                                      cli) -> None:
    (tmp_path / "h.sqlite").write_text("not a database, and long enough to be read as one " * 40)
    done = cli("--task-name", "toy", "--quiet", "--history-db", "h.sqlite")
    assert done.returncode == 9, done.stderr  # a storage error: the history was not written
    assert done.record["status"] == "ok" and done.result["toy.speed"] == 0.5
    assert "h.sqlite: not a bench-driver history" in done.record["storage_errors"][0]
    assert "error: the history was not written: h.sqlite: not a bench-driver history" in \
        done.stderr
