"""REINFORCE (Williams, 1992) over a categorical space, as the NAS-Bench-201 paper's RL baseline.

The policy is one softmax per decision (6 edges x 5 ops for NAS-Bench-201) with logits starting at
zero (uniform). Each result updates the logits with the policy gradient ``(reward - baseline) *
grad log p(config)`` through Adam; the baseline is an exponential moving average of rewards
(momentum 0.9, bias-corrected, updated before use as in the paper's code). Pure Python: 30 logits.
"""

from __future__ import annotations

import math
from typing import Sequence

from driver.search import SearchSpace, Searcher, Trial, TrialResult


class Reinforce(Searcher):
    """Policy-gradient search. Defaults: Adam ``learning_rate`` 0.01 (NATS-Bench's setting;
    the ``nb201`` preset is NAS-Bench-201's 0.001), baseline ``momentum`` 0.9."""

    name = "reinforce"
    requires = ("categorical",)
    #: NAS-Bench-201's script used Adam lr 0.001; NATS-Bench's 0.01 (the default).
    presets = {"nb201": {"learning_rate": 0.001}, "nats-bench": {"learning_rate": 0.01}}

    def __init__(
        self, space: SearchSpace, seed: int = 0, learning_rate: float = 0.01, momentum: float = 0.9
    ) -> None:
        super().__init__(space, seed)
        if not learning_rate > 0 or not 0 <= momentum < 1:
            raise ValueError(
                f"reinforce: need learning_rate > 0 and 0 <= momentum < 1, got "
                f"learning_rate={learning_rate!r}, momentum={momentum!r}"
            )
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.logits = [[0.0] * len(options) for options in space.choices()]
        self._adam = _Adam([len(row) for row in self.logits], learning_rate)
        self._baseline_sum = 0.0
        self._baseline_weight = 0.0
        self._encodings: dict[int, list[int]] = {}
        self._probabilities: list[list[float]] | None = None

    def probabilities(self) -> list[list[float]]:
        """The policy: per decision, the probability of each option (cached between updates)."""
        if self._probabilities is None:
            self._probabilities = [_softmax(row) for row in self.logits]
        return self._probabilities

    def ask(self) -> Trial:
        """Sample one option per decision from the policy."""
        encoding = [_draw(p, self.rng.random()) for p in self.probabilities()]
        trial = self.new_trial(self.space.decode(encoding))
        self._encodings[trial.number] = encoding
        return trial

    def tell(self, result: TrialResult) -> None:
        """One policy-gradient step on this result's advantage over the moving-average baseline."""
        encoding = self._encodings.pop(result.trial.number, None)
        if encoding is None:
            encoding = list(self.space.encode(result.trial.config))
        advantage = result.value - self._update_baseline(result.value)
        gradient = [  # of the loss -advantage * log p(encoding), per logit
            [-advantage * ((j == chosen) - p) for j, p in enumerate(probs)]
            for chosen, probs in zip(encoding, self.probabilities())
        ]
        self._adam.step(self.logits, gradient)
        self._probabilities = None

    def _update_baseline(self, reward: float) -> float:
        self._baseline_sum = self.momentum * self._baseline_sum + (1 - self.momentum) * reward
        self._baseline_weight = self.momentum * self._baseline_weight + (1 - self.momentum)
        return self._baseline_sum / self._baseline_weight


class _Adam:
    """Adam (Kingma & Ba) on a ragged list of parameter rows, updated in place."""

    def __init__(self, row_sizes: Sequence[int], lr: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, 1e-8
        self.m = [[0.0] * n for n in row_sizes]
        self.v = [[0.0] * n for n in row_sizes]
        self.t = 0

    def step(self, params: list[list[float]], grads: list[list[float]]) -> None:
        self.t += 1
        c1, c2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            for j, gj in enumerate(g):
                m[j] = self.beta1 * m[j] + (1 - self.beta1) * gj
                v[j] = self.beta2 * v[j] + (1 - self.beta2) * gj * gj
                p[j] -= self.lr * (m[j] / c1) / (math.sqrt(v[j] / c2) + self.eps)


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def _draw(probabilities: list[float], u: float) -> int:
    """The option whose cumulative probability interval holds ``u`` in [0, 1)."""
    cumulative = 0.0
    for i, p in enumerate(probabilities):
        cumulative += p
        if u < cumulative:
            return i
    return len(probabilities) - 1
