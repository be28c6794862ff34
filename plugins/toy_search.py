"""Reference searcher plugin: random search, over a small toy space with a known optimum.

It is the shortest complete example of the searcher interface (driver.search) and of registry
hooks; the shared searcher test suite runs every registered searcher on the toy space.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from driver.hookspecs import hookimpl
from driver.search import Config, Evaluator, Searcher, SearchSpace, Trial, TrialResult


class RandomSearch(Searcher):
    """Sample configurations uniformly, never twice while unseen ones remain likely."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self._seen: set[Config] = set()

    def ask(self) -> Trial:
        config = self.space.sample(self.rng)
        for _ in range(100):  # resample duplicates, as the NAS-Bench-201 random search does
            if config not in self._seen:
                break
            config = self.space.sample(self.rng)
        self._seen.add(config)
        return self.new_trial(config)

    def tell(self, result: TrialResult) -> None:
        """Random search learns nothing."""


class ToySpace(SearchSpace):
    """Three categorical decisions with five options each (125 configurations)."""

    name = "toy"
    OPTIONS: tuple[int, ...] = (0, 1, 2, 3, 4)
    DECISIONS = 3

    def sample(self, rng: random.Random) -> Config:
        return tuple(rng.choice(self.OPTIONS) for _ in range(self.DECISIONS))

    def mutate(self, config: Config, rng: random.Random) -> Config:
        values: list[int] = list(config)  # type: ignore[call-overload]
        i = rng.randrange(self.DECISIONS)
        values[i] = rng.choice([o for o in self.OPTIONS if o != values[i]])
        return tuple(values)

    def neighbours(self, config: Config) -> Sequence[Config]:
        values: tuple[int, ...] = tuple(config)  # type: ignore[arg-type]
        return [
            values[:i] + (o,) + values[i + 1 :]
            for i in range(self.DECISIONS)
            for o in self.OPTIONS
            if o != values[i]
        ]

    def choices(self) -> Sequence[Sequence[Any]]:
        return [self.OPTIONS] * self.DECISIONS

    def encode(self, config: Config) -> Sequence[int]:
        return [self.OPTIONS.index(v) for v in config]  # type: ignore[attr-defined]

    def decode(self, encoding: Sequence[int]) -> Config:
        return tuple(self.OPTIONS[i] for i in encoding)


class ToyEvaluator(Evaluator):
    """Value ``-sum((x - target)^2)``: the optimum is ``target`` with value 0. Each call costs 1 s,
    scaled by the fidelity when one is asked for (full fidelity is 1.0)."""

    def __init__(self, space: SearchSpace | None = None, target: Sequence[int] = (3, 1, 4)) -> None:
        self.target = tuple(target)

    def evaluate(self, trial: Trial) -> TrialResult:
        value = -float(sum((x - t) ** 2 for x, t in zip(trial.config, self.target)))  # type: ignore[call-overload]
        fidelity = 1.0 if trial.fidelity is None else trial.fidelity
        return TrialResult(trial, value, cost_s=fidelity)

    def max_fidelity(self) -> float | None:
        return 1.0


@hookimpl
def bench_driver_register_searchers() -> dict[str, type[Searcher]]:
    return {"random": RandomSearch}


@hookimpl
def bench_driver_register_search_spaces() -> dict[str, Any]:
    return {"toy": ToySpace}


@hookimpl
def bench_driver_register_evaluators() -> dict[str, Any]:
    return {"toy": ToyEvaluator}
