"""BOHB (Falkner, Klein, Hutter, ICML 2018): Hyperband brackets whose new configurations come from
a TPE-like density model (:mod:`plugins.searchers.kde`) instead of uniform sampling.

Hyperband with ratio ``eta`` between ``min_fidelity`` and the evaluator's ``max_fidelity()``:
bracket ``s`` (s = s_max .. 0, cycled) starts ``ceil((s_max+1)/(s+1) * eta^s)`` configurations at
fidelity ``max * eta^-s`` and promotes the best ``1/eta`` of each rung to ``eta`` times the fidelity
(successive halving). Each new configuration is random with probability ``random_fraction``, else
proposed by the model fitted on the largest fidelity that has enough results.

What the fidelity means is the evaluator's business: on NAS-Bench-201 (``nb201`` evaluator) it is
the number of training runs averaged, 1 and 3 by default (see docs/nas.md for why). With an
evaluator without fidelities, BOHB is the model-based sampler on full fidelity alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from driver.search import Config, Evaluator, SearchSpace, Searcher, Trial, TrialResult
from plugins.searchers.kde import KDESettings, propose


@dataclass
class _Bracket:
    """One successive-halving run: rungs of ``(configurations, fidelity)``, run one at a time."""

    rungs: list[tuple[int, float | None]]
    rung: int = 0
    queue: list[Config | None] = field(default_factory=list)  # None: draw a new configuration
    waiting: set[int] = field(default_factory=set)
    results: list[tuple[float, Config]] = field(default_factory=list)

    def promote(self) -> None:
        """Queue the best configurations of the finished rung at the next fidelity."""
        self.rung += 1
        keep = self.rungs[self.rung][0]
        ranked = sorted(self.results, key=lambda item: -item[0])
        self.queue = [config for _, config in ranked[:keep]]
        self.results = []


class BOHB(Searcher):
    """BOHB through ask/tell; options as in BOHB (``eta`` 3, ``random_fraction`` 1/3, ...)."""

    name = "bohb"
    requires = ("categorical",)

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        eta: float = 3,
        min_fidelity: float | None = None,
        random_fraction: float = 1 / 3,
        **model_options: Any,
    ) -> None:
        super().__init__(space, seed)
        if eta <= 1 or not 0 <= random_fraction <= 1:
            raise ValueError(f"bohb: need eta > 1 and 0 <= random_fraction <= 1, got {eta!r}, "
                             f"{random_fraction!r}")
        self.eta = eta
        self.min_fidelity = min_fidelity
        self.random_fraction = random_fraction
        self.model = KDESettings(**model_options)
        self.sizes = [len(options) for options in space.choices()]
        self.observations: dict[float | None, tuple[list[list[int]], list[float]]] = {}
        self._schedule = _hyperband(None, None, eta)
        self._next_bracket = 0
        self._bracket: _Bracket | None = None
        self._numpy_rng: Any = None

    def setup(self, evaluator: Evaluator) -> None:
        """Plan the brackets between ``min_fidelity`` and the evaluator's maximum fidelity."""
        top = evaluator.max_fidelity()
        bottom = self.min_fidelity if self.min_fidelity is not None else (top and top / self.eta)
        self._schedule = _hyperband(top, bottom, self.eta)

    def ask(self) -> Trial:
        """The next configuration of the current rung; a new bracket when the rung is used up."""
        if self._bracket is None or not self._bracket.queue:
            self._bracket = self._start_bracket()
        bracket = self._bracket
        config = bracket.queue.pop(0)
        if config is None:
            config = self._new_config()
        trial = self.new_trial(config, bracket.rungs[bracket.rung][1])
        bracket.waiting.add(trial.number)
        return trial

    def tell(self, result: TrialResult) -> None:
        """Feed the model; promote the rung's best once all of its results are in."""
        encodings, values = self.observations.setdefault(result.trial.fidelity, ([], []))
        encodings.append(list(self.space.encode(result.trial.config)))
        values.append(result.value)
        bracket = self._bracket
        if bracket is None or result.trial.number not in bracket.waiting:
            return  # from an abandoned bracket: it only feeds the model
        bracket.waiting.discard(result.trial.number)
        bracket.results.append((result.value, result.trial.config))
        if not bracket.waiting and not bracket.queue and bracket.rung + 1 < len(bracket.rungs):
            bracket.promote()

    def _start_bracket(self) -> _Bracket:
        rungs = self._schedule[self._next_bracket % len(self._schedule)]
        self._next_bracket += 1
        return _Bracket(rungs, queue=[None] * rungs[0][0])

    def _new_config(self) -> Config:
        """A random configuration, or the density model's proposal once it can be fitted."""
        if self.rng.random() < self.random_fraction:
            return self.space.sample(self.rng)
        fitted = [f for f, (_, v) in self.observations.items() if len(v) >= self._min_points() + 2]
        if not fitted:
            return self.space.sample(self.rng)
        encodings, values = self.observations[max(fitted, key=lambda f: -1.0 if f is None else f)]
        proposal = propose(encodings, values, self.sizes, self.model, self._rng_for_model())
        return self.space.sample(self.rng) if proposal is None else self.space.decode(proposal)

    def _min_points(self) -> int:
        return self.model.min_points_in_model or len(self.sizes) + 1

    def _rng_for_model(self) -> Any:
        if self._numpy_rng is None:
            import numpy as np

            self._numpy_rng = np.random.default_rng(self.seed)
        return self._numpy_rng


def _hyperband(
    top: float | None, bottom: float | None, eta: float
) -> list[list[tuple[int, float | None]]]:
    """Hyperband's brackets, most aggressive first: per bracket, ``(configurations, fidelity)``
    per rung. Without fidelities, one bracket of one configuration at fidelity None."""
    if top is None or bottom is None or bottom >= top:
        return [[(1, top)]]
    s_max = int(math.floor(math.log(top / bottom) / math.log(eta) + 1e-9))
    brackets: list[list[tuple[int, float | None]]] = []
    for s in range(s_max, -1, -1):
        n = int(math.ceil((s_max + 1) / (s + 1) * eta**s))
        brackets.append(
            [(max(1, int(n * eta ** (-i) + 1e-9)), top * eta ** (i - s)) for i in range(s + 1)]
        )
    return brackets
