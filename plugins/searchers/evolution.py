"""Regularized evolution (R-EA; Real et al., AAAI 2019), as in the NAS-Bench-201 paper's baseline.

Keep a population of the ``population_size`` most recent models. Start it with random models; then
repeatedly draw ``sample_size`` members (with replacement), mutate the best of them (one edge's op
changed) and add the child, dropping the oldest member: age, not fitness, decides who dies.
"""

from __future__ import annotations

import collections

from driver.search import Config, SearchSpace, Searcher, Trial, TrialResult


class RegularizedEvolution(Searcher):
    """R-EA through ask/tell. Defaults are the NAS-Bench-201 paper's: population 10, sample 3."""

    name = "rea"
    requires = ("mutation",)

    def __init__(
        self, space: SearchSpace, seed: int = 0, population_size: int = 10, sample_size: int = 3
    ) -> None:
        super().__init__(space, seed)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise ValueError(
                f"rea: need population_size >= 1 and 1 <= sample_size <= population_size, got "
                f"population_size={population_size!r}, sample_size={sample_size!r}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: collections.deque[tuple[Config, float]] = collections.deque(
            maxlen=population_size
        )

    def ask(self) -> Trial:
        """A random model while the population fills, then a mutated tournament winner."""
        if self._trials < self.population_size or not self.population:
            return self.new_trial(self.space.sample(self.rng))
        return self.new_trial(self.space.mutate(self._tournament_winner(), self.rng))

    def tell(self, result: TrialResult) -> None:
        """Add the model to the population; the deque drops the oldest once it is full."""
        self.population.append((result.trial.config, result.value))

    def _tournament_winner(self) -> Config:
        members = list(self.population)
        sample = [self.rng.choice(members) for _ in range(self.sample_size)]
        return max(sample, key=lambda member: member[1])[0]
