"""Random search: the reference searcher (the shortest complete use of driver.search)."""

from __future__ import annotations

from typing import Any

from driver.search import Config, Searcher, SearchSpace, Trial, TrialResult


class RandomSearch(Searcher):
    """Sample configurations uniformly. ``replacement=True`` (default) draws independently, so a
    configuration may come twice, as NAS-Bench-201's random search does; ``replacement=False``
    redraws one already asked (up to 100 times, so a nearly exhausted space still gets asks)."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0, replacement: bool = True,
                 **options: Any) -> None:
        super().__init__(space, seed, **options)
        if not isinstance(replacement, bool):
            raise ValueError(f"random: replacement={replacement!r}; expected True or False")
        self.replacement = replacement
        self._seen: set[Config] = set()

    def ask(self) -> Trial:
        config = self.space.sample(self.rng)
        for _ in range(0 if self.replacement else 100):
            if config not in self._seen:
                break
            config = self.space.sample(self.rng)
        self._seen.add(config)
        return self.new_trial(config)

    def tell(self, result: TrialResult) -> None:
        """Random search learns nothing."""
