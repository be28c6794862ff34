"""Local search (White, Nolen, Savani: "Local search is state of the art for NAS benchmarks", 2020).

From a random model, evaluate every neighbour (one edge's op changed) in random order; move to the
best neighbour if it beats the current model, otherwise the current model is a local optimum and
the search restarts from a new random model. A model already evaluated is never asked again: its
known value is reused.
"""

from __future__ import annotations

from driver.search import Config, SearchSpace, Searcher, Trial, TrialResult


_MAX_SKIPS = 1000


class LocalSearch(Searcher):
    """Best-improvement hill climbing with random restarts, through ask/tell."""

    name = "local_search"
    requires = ("neighbours",)

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space, seed)
        self.values: dict[Config, float] = {}
        self.current: tuple[Config, float] | None = None
        self._queue: list[Config] = []
        self._asked: set[Config] = set()
        self._expanded: Config | None = None

    def ask(self) -> Trial:
        """The next unevaluated neighbour of the current model, or a new random start."""
        for _ in range(_MAX_SKIPS):  # a small space can run out of unseen models
            if not self._queue:
                self._advance()
            config = self._queue.pop()
            if config not in self._asked:
                break
        self._asked.add(config)
        return self.new_trial(config)

    def tell(self, result: TrialResult) -> None:
        """Remember the value; the first result after a restart becomes the current model."""
        config = result.trial.config
        self.values[config] = result.value
        if self.current is None:
            self.current = (config, result.value)

    def _advance(self) -> None:
        """Queue what to evaluate next: the current model's neighbours, or a random start."""
        if self.current is not None and self.current[0] == self._expanded:
            self._move_or_restart()  # its neighbourhood has been evaluated
        if self.current is None:
            self._queue = [self.space.sample(self.rng)]
            return
        self._expanded = self.current[0]
        neighbours = list(self.space.neighbours(self._expanded))
        self.rng.shuffle(neighbours)
        self._queue = neighbours

    def _move_or_restart(self) -> None:
        """Move to the best evaluated neighbour if it is better, else restart (a local optimum)."""
        assert self.current is not None
        config, value = self.current
        scored = [(self.values[n], n) for n in self.space.neighbours(config) if n in self.values]
        best = max(scored, key=lambda item: item[0], default=None)
        if best is not None and best[0] > value:
            self.current = (best[1], best[0])
        else:
            self.current = None
