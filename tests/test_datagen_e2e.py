"""End to end on a CPU: a profile of 2 streams x 4 samples on digits, trained 1 then 2 epochs
through the real CLI, merged, searched, and a surrogate fitted on it; the values checked against
an uninterrupted run, and against a run killed mid-stream and continued."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from driver.search import SearchBudget, run_search
from plugins.datagen.generate import run_stream
from plugins.datagen.profile import parse_profile
from plugins.datagen.store import EXACT_COLUMNS, store_path
from plugins.datagen.table import GeneratedTable, GeneratedTableEvaluator
from plugins.nas201.space import NB201Space
from plugins.searchers.bohb import BOHB
from plugins.surrogate.evaluator import SurrogateEvaluator
from plugins.toy_search.random_search import RandomSearch

PROFILE = {"streams": 2, "samples": 4, "mode": "toy", "data": "digits", "epochs": 2,
           "channels": 4, "cells_per_stage": 1, "estimate_s_per_epoch": 0.5}


def _toml(table: dict) -> str:
    def text(value: object) -> str:
        return f'"{value}"' if isinstance(value, str) else str(value)

    return "[datagen.toy]\n" + "".join(f"{k} = {text(v)}\n" for k, v in table.items())


def _exact(path: Path, taskid: int) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT taskid, model_idx, dataset, epoch, {', '.join(EXACT_COLUMNS)}"
                          f" FROM epochs WHERE taskid=? ORDER BY model_idx, epoch",
                          (taskid,)).fetchall()


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    """The profile generated through the CLI (1 epoch, then 2 with two workers) and merged."""
    import os
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("datagen")
    (root / "task_config.toml").write_text(_toml(PROFILE))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "driver", "datagen", "toy", *args],
                              cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    cli("init")
    first = cli("run", "--epochs", "1")
    second = cli("run", "--epochs", "2", "--workers", "2")
    cli("merge")
    return root, first.stdout, second.stdout


def test_runs_report_the_estimate_then_the_measured_rate(generated) -> None:
    root, first, second = generated
    lines = first.splitlines()
    assert lines[0].startswith("datagen toy: 8 epochs left to reach epoch 1 in 2 taskid(s)")
    assert "0.5 s/epoch (estimate)" in lines[0]
    assert sum("epoch=1/2" in line for line in lines) == 8
    assert "8 epochs left to reach epoch 2" in lines[-1] and "measured over 8 epochs" in lines[-1]
    assert sum("epoch=2/2" in line for line in second.splitlines()) == 8
    assert "epoch=1/2" not in second  # continued from checkpoints, nothing retrained
    assert "0 epochs left" in second.splitlines()[-1]


def test_continuing_and_a_killed_stream_give_the_uninterrupted_values(generated,
                                                                      tmp_path: Path) -> None:
    root, _, _ = generated
    profile = parse_profile("toy", PROFILE, root / "task_config.toml")
    for name in ("profile.json", "samples.json"):
        (tmp_path / name).write_bytes((root / "datagen" / "toy" / name).read_bytes())
    run_stream(profile, tmp_path, 0, 2, lambda line: None)  # uninterrupted, in this process
    cli_store = store_path(root / "datagen" / "toy", 0)
    assert _exact(store_path(tmp_path, 0), 0) == _exact(cli_store, 0)
    assert len(_exact(cli_store, 0)) == 8

    lines: list[str] = []

    def killed_after_three(line: str) -> None:
        lines.append(line)
        if len(lines) == 3:
            raise _Killed

    with pytest.raises(_Killed):
        run_stream(profile, tmp_path, 1, 2, killed_after_three)
    assert len(_exact(store_path(tmp_path, 1), 1)) == 3  # every finished epoch was kept
    run_stream(profile, tmp_path, 1, 2, lines.append)
    assert len(lines) == 3 + 5  # only the missing epochs were trained
    assert _exact(store_path(tmp_path, 1), 1) == _exact(store_path(root / "datagen" / "toy", 1),
                                                        1)


def test_the_merged_table_is_searched_per_epoch_and_fits_a_surrogate(generated) -> None:
    root, _, _ = generated
    table = GeneratedTable(root / "datagen" / "toy" / "benchmark.sqlite")
    assert sum(len(table.query_by_index(i, "cifar10-valid")) for i in range(len(table))) == 8
    assert table.epochs("cifar10-valid") == 2
    evaluator = GeneratedTableEvaluator(table, "cifar10-valid")
    outcome = run_search(RandomSearch(table.space(), seed=0), evaluator, SearchBudget(10))
    best_index, best_accuracy = table.find_best("cifar10-valid")
    assert outcome.best.value <= max(
        r.get_eval("x-valid")["accuracy"] for i in range(len(table))
        for r in table.query_by_index(i, "cifar10-valid").values())
    assert best_accuracy >= table.query_meta_info_by_index(0).get_metrics(
        "cifar10-valid")["accuracy"]
    fidelities: set[float | None] = set()
    bohb = BOHB(table.space(), seed=0, eta=2)  # rungs at 1 and 2 epochs
    run_search(bohb, evaluator, SearchBudget(8),
               on_result=lambda t, r: fidelities.add(r.trial.fidelity))
    assert fidelities == {1.0, 2.0}

    lines: list[str] = []
    surrogate = SurrogateEvaluator(source=str(table.path), train_cells=len(table) - 2,
                                   log=lines.append)
    assert surrogate.space.name == "nb201" and surrogate.max_fidelity() == 2.0
    assert surrogate.quality.held_out_cells == 2 and "held-out cells" in lines[0]
    result = run_search(RandomSearch(NB201Space(), seed=0), surrogate, SearchBudget(20))
    assert result.evaluations == 20 and 0.0 <= result.best.value <= 100.0
