"""Named NAS-Bench-201 search protocols: what is searched, for how long, and what is reported.

* ``transfer`` (the paper's, the default): search ``cifar10-valid`` for 12,000 simulated s with
  the settings NAS-Bench-201's scripts ran (searcher preset ``nb201``), then report the chosen
  cell on every data set. The paper's CIFAR-100 and ImageNet16-120 columns come from this.
* ``per-dataset`` (NATS-Bench's): search each data set on its own, 20,000 / 40,000 / 120,000 s
  for cifar10-valid / cifar100 / ImageNet16-120 (searcher preset ``nats-bench``), and report
  the chosen cell on the data set searched.

A reported column is ``(dataset, split)``. The table holds only validation accuracies
(``x-valid``), so the CIFAR-10 test column is ``None`` (not held) on our side. Published values
are those ../shared/REFERENCE.md gives (the paper's Table 5, CIFAR-10 only); others are ``n/a``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from driver.errors import ConfigError, did_you_mean
from driver.search import SearchBudget, Searcher, TrialResult, run_search

#: A reported column: a data set and its split.
Column = tuple[str, str]
ALL_COLUMNS: tuple[Column, ...] = (("cifar10-valid", "x-valid"), ("cifar10", "ori-test"),
                                   ("cifar100", "x-valid"), ("ImageNet16-120", "x-valid"))
#: NAS-Bench-201 paper, Table 5 (mean, std over runs, %): CIFAR-10 valid and test.
PAPER_TABLE5: Mapping[str, Mapping[Column, tuple[float, float]]] = {
    name: {("cifar10-valid", "x-valid"): valid, ("cifar10", "ori-test"): test}
    for name, valid, test in (
        ("rea", (91.19, 0.31), (93.92, 0.30)),
        ("reinforce", (91.09, 0.37), (93.85, 0.37)),
        ("random", (90.93, 0.36), (93.70, 0.36)),
        ("bohb", (90.82, 0.53), (93.61, 0.52)),
        ("optimal", (91.61, 0.0), (94.37, 0.0)),
    )
}


@dataclass(frozen=True)
class Protocol:
    """A named protocol: budgets per searched data set, the searcher preset, what is reported."""

    name: str
    description: str
    budgets_s: Mapping[str, float]
    preset: str
    transfer: bool  # True: report the chosen cell on ALL_COLUMNS; False: on the searched set
    published: Mapping[str, Mapping[Column, tuple[float, float]]]

    def budget_s(self, dataset: str) -> float:
        """The simulated seconds this protocol gives a search on *dataset*; ConfigError if it
        does not search *dataset*."""
        if dataset not in self.budgets_s:
            raise ConfigError(f"protocol {self.name!r} searches {', '.join(self.budgets_s)}, not "
                              f"{dataset!r}; choose one of those or protocol 'per-dataset'")
        return self.budgets_s[dataset]

    def columns(self, dataset: str) -> tuple[Column, ...]:
        """The columns reported after a search on *dataset*."""
        return ALL_COLUMNS if self.transfer else ((dataset, "x-valid"),)


PROTOCOLS: Mapping[str, Protocol] = {
    "transfer": Protocol(
        "transfer", "NAS-Bench-201's paper: search cifar10-valid 12,000 s, report on every set",
        {"cifar10-valid": 12_000.0}, "nb201", True, PAPER_TABLE5),
    "per-dataset": Protocol(
        "per-dataset", "NATS-Bench: search each data set 20,000 / 40,000 / 120,000 s",
        {"cifar10-valid": 20_000.0, "cifar100": 40_000.0, "ImageNet16-120": 120_000.0},
        "nats-bench", False, {}),
}


def protocol(name: str) -> Protocol:
    """The protocol *name*, or a ConfigError listing the known ones."""
    if name not in PROTOCOLS:
        raise ConfigError(f"no NAS-Bench-201 protocol {name!r}{did_you_mean(name, PROTOCOLS)}; "
                          f"protocols: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def reported_accuracy(index: int, column: Column) -> float | None:
    """The mean accuracy (%) of cell *index* in *column*, or None where the table holds none
    (every split but ``x-valid``)."""
    from plugins.nas201.table import columns

    dataset, split = column
    return columns(dataset).mean_valid_accuracy[index] if split == "x-valid" else None


def published_text(protocol_: Protocol, searcher: str, column: Column) -> str:
    """``"91.19 +- 0.31"`` or ``"n/a"``."""
    value = protocol_.published.get(searcher, {}).get(column)
    return "n/a" if value is None else f"{value[0]:.2f} +- {value[1]:.2f}"


@dataclass(frozen=True)
class ProtocolRun:
    """One search under a protocol: the chosen cell's accuracy per reported column, the number
    of evaluations, and the anytime trace ``(simulated time s, the incumbent's mean accuracy on
    the searched data set)`` in completion order."""

    reported: Mapping[Column, float | None]
    evaluations: int
    trace: tuple[tuple[float, float], ...]


def run_protocol(searcher: type[Searcher], chosen: Protocol, dataset: str, seed: int, *,
                 concurrency: int = 1, max_evaluations: int | None = None,
                 reward: str = "run", **options: Any) -> ProtocolRun:
    """One seeded search of *dataset* with *chosen*'s preset for *searcher* (then *options*),
    for the protocol's budget, or *max_evaluations* evaluations without a time limit."""
    from plugins.nas201 import make_evaluator
    from plugins.nas201.space import NB201Space

    space = NB201Space()
    evaluator = make_evaluator(space, dataset, seed, reward=reward)
    settings = {**searcher.presets.get(chosen.preset, {}), **options}
    budget = SearchBudget(max_evaluations,
                          None if max_evaluations else chosen.budget_s(dataset))
    trace: list[tuple[float, float]] = []
    best: list[TrialResult] = []

    def incumbent(finish_s: float, result: TrialResult) -> None:
        if not best or result.value > best[0].value:  # run_search's rule: the first best stays
            best[:] = [result]
        trace.append((finish_s, best[0].info["mean_valid_accuracy"]))

    outcome = run_search(searcher(space, seed=seed, **settings), evaluator, budget,
                         concurrency=concurrency, on_result=incumbent)
    index = outcome.best.info["index"]
    reported = {column: reported_accuracy(index, column) for column in chosen.columns(dataset)}
    return ProtocolRun(reported, outcome.evaluations, tuple(trace))


def random_search_gaps(chosen: Protocol, dataset: str, seeds: int, samples: int
                       ) -> list[tuple[Column, float, float, float]]:
    """The first sanity check: random search with noise-free values and *samples* draws (with
    replacement, as it samples), per held column: ``(column, mean, standard error, exact
    expectation)`` over seeds ``0..seeds-1``."""
    import statistics

    from plugins.nas201.table import expected_transfer_of_random
    from plugins.toy_search.random_search import RandomSearch

    runs = [run_protocol(RandomSearch, chosen, dataset, seed, max_evaluations=samples,
                         reward="mean") for seed in range(seeds)]
    gaps = []
    for column in chosen.columns(dataset):
        finals = [run.reported[column] for run in runs]
        if None in finals:
            continue  # not held by the table
        held = [float(v) for v in finals if v is not None]
        gaps.append((column, statistics.mean(held), statistics.stdev(held) / len(held) ** 0.5,
                     expected_transfer_of_random(dataset, column[0], samples)))
    return gaps
