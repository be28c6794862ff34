"""The surrogate evaluator: its features, its quality on held-out NB201 cells, and every
registered searcher running on it."""

from __future__ import annotations

import random

import pytest

from driver.errors import ConfigError, DataError
from driver.search import SearchBudget, SearchSpace, Trial, run_search
from plugins.nas201.space import NB201Space, arch_string
from plugins.searchers import bench_driver_register_searchers
from plugins.surrogate import make_evaluator
from plugins.surrogate.features import feature_rows, live_ops, nb201_live, onehot
from plugins.surrogate.model import Surrogate, nb201_rows, split_cells
from plugins.toy_search.random_search import RandomSearch
from plugins.toy_search.space import ToySpace

SEARCHERS = {**bench_driver_register_searchers(), "random": RandomSearch}
CONV3, SKIP, NONE = "nor_conv_3x3", "skip_connect", "none"


def test_dead_edges_are_removed_and_equivalent_cells_look_the_same() -> None:
    space = NB201Space()
    # node 1 is cut off from the input (0->1 is none): edges 1->2 and 1->3 are dead
    cut = arch_string([NONE, CONV3, CONV3, SKIP, CONV3, CONV3])
    same = arch_string([NONE, CONV3, SKIP, SKIP, SKIP, CONV3])
    assert live_ops(space.encode(cut)) == [0, 3, 0, 1, 0, 3]
    assert nb201_live(space.encode(cut)) == nb201_live(space.encode(same))
    assert feature_rows(space, [cut], "onehot") != feature_rows(space, [same], "onehot")
    disconnected = arch_string([CONV3, CONV3, CONV3, NONE, NONE, NONE])
    features = nb201_live(space.encode(disconnected))
    assert features[-2:] == [-1.0, 0.0] and sum(features[:30]) == 6  # every edge is none
    assert onehot([1, 0], [2, 3]) == [0.0, 1.0, 1.0, 0.0, 0.0]


def test_fitted_on_few_cells_it_ranks_the_held_out_cells() -> None:
    rows = nb201_rows()
    train, held_out = split_cells(rows, 300, seed=0)
    assert len(held_out) == 15625 - 300 and not train & held_out
    evaluator = make_evaluator(NB201Space(), train_cells=300, seed=0)
    quality = evaluator.quality  # type: ignore[attr-defined]
    assert quality.held_out_cells == 15625 - 300
    assert quality.kendall_tau > 0.6 and quality.rmse < 6.0  # random predictions: tau ~ 0
    first, again = evaluator.evaluate(Trial(0, rows.configs[5])), \
        evaluator.evaluate(Trial(1, rows.configs[5]))
    assert first.value == again.value and first.cost_s > 0
    assert evaluator.max_fidelity() is None


def test_every_registered_searcher_runs_on_the_surrogate() -> None:
    evaluator = make_evaluator(NB201Space(), train_cells=200, seed=1)
    for name, searcher in SEARCHERS.items():
        outcome = run_search(searcher(NB201Space(), seed=0), evaluator, SearchBudget(15))
        assert outcome.evaluations == 15, name
        assert outcome.best.info["predicted"] is True


def test_bad_options_are_refused() -> None:
    with pytest.raises(DataError, match="train_cells=20000"):
        make_evaluator(NB201Space(), train_cells=20000)
    with pytest.raises(ConfigError, match="encoding='one-hot' \\(did you mean 'onehot'\\?\\)"):
        make_evaluator(NB201Space(), encoding="one-hot")
    with pytest.raises(ConfigError, match="is not categorical"):
        Surrogate(_Interval(), "onehot", False).features([0.5], None)
    with pytest.raises(ConfigError, match="encoding='live' is for NAS-Bench-201 cells"):
        Surrogate(ToySpace(), "live", False).features([(0, 1, 2)], None)
    assert Surrogate(ToySpace(), "onehot", False).features([(0, 1, 2)], None).shape == (1, 15)


class _Interval(SearchSpace):
    name = "interval"

    def sample(self, rng: random.Random) -> float:
        return rng.random()


def test_a_missing_merged_table_is_refused() -> None:
    with pytest.raises(DataError, match="no merged table"):
        make_evaluator(None, source="/nonexistent/benchmark.sqlite")


def test_the_benchmark_runs_in_its_quick_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "surrogate.py"
    done = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "KENDALL_TAU nb201 cifar10-valid 200 training cells = 0." in done.stdout
    assert "rea on the surrogate, 2000 s budget, 3 seeds" in done.stdout
