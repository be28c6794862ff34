"""Random search: the reference searcher (the shortest complete use of driver.search)."""

from __future__ import annotations

from typing import Any

from driver.search import Config, Searcher, SearchSpace, Trial, TrialResult


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
