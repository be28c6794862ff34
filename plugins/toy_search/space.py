"""A small toy search space with a known optimum, and its evaluator: the shared searcher suite
runs every registered searcher on it."""

from __future__ import annotations

import random
from typing import Any, Sequence

from driver.search import Config, Evaluator, SearchSpace, Trial, TrialResult


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
