"""BOHB (Falkner, Klein, Hutter, ICML 2018) as hpbandster defines it: Hyperband brackets whose new
configurations come from a TPE-like density model (:mod:`plugins.searchers.kde`).

Hyperband with ratio ``eta`` between ``min_fidelity`` and the evaluator's ``max_fidelity()``
(hpbandster's budgets ``max * eta^-k``): bracket ``s`` (s = s_max .. 0, cycled) starts
``floor((s_max + 1) / (s + 1)) * eta^s`` configurations at the lowest of its fidelities and
promotes the best ``1/eta`` of each rung to the next (successive halving) once the whole rung has
reported. Each new configuration is random with probability ``random_fraction``, else proposed
by the model of the largest fidelity that has one.

Asynchronous use (several trials in flight): when no started bracket has a trial to hand out,
:meth:`ask` starts the next bracket, as hpbandster's master starts a new iteration; every bracket
stays active and is promoted when its rung completes.

What the fidelity means is the evaluator's business (on NAS-Bench-201 see docs/nas.md). With an
evaluator without fidelities, BOHB is the model-based sampler on full fidelity alone.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass, field
from typing import Any

from driver.search import Config, Evaluator, SearchSpace, Searcher, Trial, TrialResult
from plugins.searchers.kde import KDESettings, has_model, propose


@dataclass
class _Bracket:
    """One successive-halving run: rungs of ``(configurations, fidelity)``, run one at a time."""

    rungs: list[tuple[int, float | None]]
    rung: int = 0
    queue: list[Config | None] = field(default_factory=list)  # None: draw a new configuration
    waiting: set[int] = field(default_factory=set)
    results: list[tuple[float, Config]] = field(default_factory=list)

    def report(self, number: int, value: float, config: Config) -> None:
        """Record a result of this rung; promote once the whole rung has reported."""
        self.waiting.discard(number)
        self.results.append((value, config))
        if not self.waiting and not self.queue and self.rung + 1 < len(self.rungs):
            self.rung += 1
            keep = self.rungs[self.rung][0]
            ranked = sorted(self.results, key=lambda item: -item[0])
            self.queue = [config for _, config in ranked[:keep]]
            self.results = []


class BOHB(Searcher):
    """BOHB through ask/tell; defaults are hpbandster's (``eta`` 3, ``random_fraction`` 1/3,
    ``num_samples`` 64, ``top_n_percent`` 15, ``min_bandwidth`` 1e-3)."""

    name = "bohb"
    requires = ("categorical",)
    #: NAS-Bench-201's BOHB script (AutoDL-Projects ``exps/NAS-Bench-201-algos/BOHB.py``, run
    #: with num_samples 4, random_fraction 0, bandwidth_factor 3; min_bandwidth is the script's
    #: default 0.3); NATS-Bench's script has the same settings.
    presets = {name: {"num_samples": 4, "random_fraction": 0.0, "bandwidth_factor": 3.0,
                      "min_bandwidth": 0.3} for name in ("nb201", "nats-bench")}

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
        self.model.min_points(len(self.sizes))  # a bad min_points_in_model fails now
        # per fidelity: encodings (flat, d per result) and values; arrays hand numpy a buffer
        self.observations: dict[float | None, tuple[array.array[int], array.array[float]]] = {}
        self._schedule = _hyperband(None, None, eta)
        self._started = 0
        self._brackets: list[_Bracket] = []
        self._bracket_of: dict[int, _Bracket] = {}
        self._numpy_rng: Any = None

    def setup(self, evaluator: Evaluator) -> None:
        """Plan the brackets between ``min_fidelity`` (else the evaluator's, else max / eta) and
        the evaluator's maximum fidelity."""
        top = evaluator.max_fidelity()
        bottom = self.min_fidelity if self.min_fidelity is not None else evaluator.min_fidelity()
        if bottom is None:
            bottom = top and top / self.eta
        self._schedule = _hyperband(top, bottom, self.eta)

    def ask(self) -> Trial:
        """The next configuration of the oldest bracket that has one; else a new bracket."""
        bracket = next((b for b in self._brackets if b.queue), None) or self._start_bracket()
        config = bracket.queue.pop(0)
        if config is None:
            config = self._new_config()
        trial = self.new_trial(config, bracket.rungs[bracket.rung][1])
        bracket.waiting.add(trial.number)
        self._bracket_of[trial.number] = bracket
        return trial

    def tell(self, result: TrialResult) -> None:
        """Feed the model; the result's bracket promotes once its rung has reported."""
        encodings, values = self.observations.setdefault(
            result.trial.fidelity, (array.array("q"), array.array("d")))
        encodings.extend(self.space.encode(result.trial.config))
        values.append(result.value)
        bracket = self._bracket_of.pop(result.trial.number, None)
        if bracket is not None:
            bracket.report(result.trial.number, result.value, result.trial.config)
        self._brackets = [b for b in self._brackets if b.queue or b.waiting]  # unfinished

    def _start_bracket(self) -> _Bracket:
        rungs = self._schedule[self._started % len(self._schedule)]
        self._started += 1
        bracket = _Bracket(rungs, queue=[None] * rungs[0][0])
        self._brackets.append(bracket)
        return bracket

    def _new_config(self) -> Config:
        """A random configuration, or the density model's proposal once there is a model."""
        modelled = [f for f, (_, v) in self.observations.items()
                    if has_model(len(v), self.model, len(self.sizes))]
        if not modelled or self.rng.random() < self.random_fraction:
            return self.space.sample(self.rng)
        encodings, values = self.observations[max(modelled, key=lambda f: -1.0 if f is None else f)]
        proposal = propose(encodings, values, self.sizes, self.model, self._rng_for_model())
        return self.space.sample(self.rng) if proposal is None else self.space.decode(proposal)

    def _rng_for_model(self) -> Any:
        if self._numpy_rng is None:
            import numpy as np

            self._numpy_rng = np.random.default_rng(self.seed)
        return self._numpy_rng


def _hyperband(
    top: float | None, bottom: float | None, eta: float
) -> list[list[tuple[int, float | None]]]:
    """hpbandster's brackets, most aggressive first: per bracket, ``(configurations, fidelity)``
    per rung. Without fidelities, one bracket of one configuration at fidelity None."""
    if top is None or bottom is None or bottom >= top:
        return [[(1, top)]]
    s_max = int(math.floor(math.log(top / bottom) / math.log(eta) + 1e-9))
    brackets: list[list[tuple[int, float | None]]] = []
    for s in range(s_max, -1, -1):
        n = int((s_max + 1) // (s + 1) * eta**s + 1e-9)
        brackets.append(
            [(max(1, int(n * eta ** (-i) + 1e-9)), top * eta ** (i - s)) for i in range(s + 1)]
        )
    return brackets
