"""BOHB as hpbandster defines it (automl/HpBandSter, config_generators/bohb.py, optimizers/bohb.py)
and the searchers' named presets."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driver.search import SearchBudget, Trial, TrialResult, run_search
from plugins.searchers.bohb import BOHB, _hyperband
from plugins.searchers.kde import KDESettings, bandwidths, good_and_bad, propose
from plugins.searchers.reinforce import Reinforce
from plugins.toy_search.random_search import RandomSearch
from plugins.toy_search.space import ToyEvaluator, ToySpace


def test_brackets_are_hpbandsters_for_nb201s_budgets_12_to_200() -> None:
    """hpbandster: n0 = floor(S / (s + 1)) * eta^s, S = 3 budgets 22.2, 66.7, 200."""
    brackets = _hyperband(200.0, 12.0, 3)
    sizes = [[n for n, _ in rungs] for rungs in brackets]
    assert sizes == [[9, 3, 1], [3, 1], [3]]
    assert [f for _, f in brackets[0]] == pytest.approx([200 / 9, 200 / 3, 200])


def test_a_model_only_once_good_and_bad_sets_each_hold_d_plus_1_points() -> None:
    settings, d = KDESettings(), 6
    # n_good = max(7, 15% of n) = 7, so the bad set reaches 7 points at n = 14
    assert good_and_bad([float(i) for i in range(13)], settings, d) is None
    good, bad = good_and_bad([float(i) for i in range(14)], settings, d)  # type: ignore[misc]
    assert sorted(good) == list(range(7, 14)) and sorted(bad) == list(range(7))
    with pytest.raises(ValueError, match="min_points_in_model=3 is below 7"):
        KDESettings(min_points_in_model=3).min_points(d)


def test_bandwidths_are_statsmodels_normal_reference_with_the_population_std() -> None:
    import numpy as np  # a dependency: never skipped
    points = np.array([[0, 1], [2, 1], [4, 1], [1, 1]])
    expected = 1.06 * np.std(points[:, 0]) * 4 ** (-1 / 6)
    bw = bandwidths(points, np.array([5, 5]), KDESettings())
    assert bw[0] == pytest.approx(min(expected, 4 / 5)) and bw[1] == pytest.approx(1e-3)


def test_bandwidth_factor_does_not_widen_categorical_parameters() -> None:
    import numpy as np  # a dependency: never skipped
    rng = random.Random(0)
    encodings = [[rng.randrange(5) for _ in range(6)] for _ in range(40)]
    values = [float(rng.random()) for _ in encodings]
    proposals = [propose(encodings, values, [5] * 6, KDESettings(bandwidth_factor=factor),
                         np.random.default_rng(1)) for factor in (1.0, 3.0, 10.0)]
    assert proposals[0] is not None and proposals[0] == proposals[1] == proposals[2]


class CountingToySpace(ToySpace):
    """Counts uniform samples."""

    samples = 0

    def sample(self, rng: random.Random) -> Any:
        self.samples += 1
        return super().sample(rng)


@pytest.mark.parametrize(("random_fraction", "uniform"), [(0.0, False), (1.0, True)])
def test_random_fraction_0_proposes_from_the_model_once_there_is_one(
        random_fraction: float, uniform: bool) -> None:
    space = CountingToySpace()
    searcher = BOHB(space, seed=0, random_fraction=random_fraction, num_samples=4)
    searcher.setup(ToyEvaluator())
    for _ in range(60):
        searcher.tell(ToyEvaluator().evaluate(searcher.ask()))
    before = space.samples
    for _ in range(20):
        searcher._new_config()
    assert (space.samples > before) == uniform


class BigToySpace(ToySpace):
    """5^6 configurations: a repeat by chance is rare."""

    DECISIONS = 6


def test_every_bracket_is_promoted_with_many_trials_in_flight() -> None:
    """Asynchronous: new brackets start while older ones wait; each still promotes its best."""
    searcher, told = BOHB(BigToySpace(), seed=4, min_fidelity=1 / 9), []
    outcome = run_search(searcher, ToyEvaluator(), SearchBudget(max_evaluations=200),
                         concurrency=16, on_result=lambda _, result: told.append(result.trial))
    assert outcome.evaluations == 200
    low = {t.config for t in told if t.fidelity == pytest.approx(1 / 9)}
    promoted = [t for t in told if t.fidelity == pytest.approx(1 / 3) and t.config in low]
    # 200 trials hold 8 aggressive brackets (9 + 3 + 1 each, with the others between them)
    assert len(promoted) >= 3 * 5


def test_presets_name_the_papers_settings() -> None:
    assert Reinforce.presets["nb201"] == {"learning_rate": 0.001}
    assert Reinforce.presets["nats-bench"] == {"learning_rate": 0.01}
    assert BOHB.presets["nb201"] == {"num_samples": 4, "random_fraction": 0.0,
                                     "bandwidth_factor": 3.0, "min_bandwidth": 0.3}
    assert Reinforce(ToySpace(), **Reinforce.presets["nb201"]).learning_rate == 0.001


def asked(searcher: Any, n: int) -> list[Any]:
    configs = []
    for _ in range(n):
        trial = searcher.ask()
        configs.append(trial.config)
        searcher.tell(TrialResult(trial, 0.0))
    return configs


def test_random_search_samples_with_replacement_unless_told_not_to() -> None:
    with_repeats = asked(RandomSearch(ToySpace(), seed=0), 125)
    assert len(set(with_repeats)) < 100  # 125 uniform draws from 125 configurations repeat
    distinct = asked(RandomSearch(ToySpace(), seed=0, replacement=False), 125)
    assert len(set(distinct)) > 120
    with pytest.raises(ValueError, match="replacement='yes'"):
        RandomSearch(ToySpace(), replacement="yes")  # type: ignore[arg-type]


def test_a_bohb_trial_of_the_nominal_fidelity_is_any_budget_of_its_rungs() -> None:
    searcher = BOHB(ToySpace(), seed=0)
    trial = searcher.ask()  # before setup: one bracket at full fidelity (no fidelities known)
    assert isinstance(trial, Trial) and trial.fidelity is None


def test_the_density_matches_the_product_of_kernels_also_for_a_one_option_decision() -> None:
    import numpy as np

    from plugins.searchers.kde import _density

    rng = np.random.default_rng(3)
    sizes = np.array([5, 1, 3])
    data = np.stack([rng.integers(0, c, size=40) for c in sizes], axis=1)
    points = np.stack([rng.integers(0, c, size=7) for c in sizes], axis=1)
    bw = bandwidths(data, sizes, KDESettings(min_bandwidth=0.05))
    same = points[:, None, :] == data[None, :, :]
    kernel = np.where(same, 1 - bw, bw / np.maximum(sizes - 1, 1))  # the definition, directly
    assert np.all(np.isfinite(_density(points, data, bw, sizes)))
    assert np.allclose(_density(points, data, bw, sizes), kernel.prod(axis=2).mean(axis=1))
