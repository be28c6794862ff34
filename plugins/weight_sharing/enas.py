"""ENAS on the NAS-Bench-201 supernet (Pham et al., ICML 2018), as NAS-Bench-201 ran it.

A controller (2-layer LSTM, 32 units) samples one op per edge in turn, its logits
``2.5 * tanh(logits / 5)``. Each epoch: the shared weights train on the weight half under one
controller sample per batch (clip 5); then the controller takes ``controller_steps`` Adam steps,
each the REINFORCE gradient averaged over ``controller_aggregate`` samples, the reward of a
sample being its top-1 accuracy (a fraction) on one validation batch plus 1e-4 times its
entropy, minus an exponential moving average (0.99) of the rewards (clip 5). To choose, the
controller's samples (10 after an epoch, 100 at the end) are scored on validation batches and
the best is kept. The controller is tiny and runs on the CPU with the search's generator, so
its samples are the same on every device.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from plugins.nas201.space import EDGES, OPS
from plugins.nas201.supernet import Path, Supernet
from plugins.weight_sharing.loop import (
    Batch, Choice, EpochStats, SearchData, Strategy, WeightOptimizer, arch_adam, choose_by_score,
)
from plugins.weight_sharing.settings import SearchSettings

EPOCH_SAMPLES = 10  # cells scored after each epoch (the reference's get_best_arch default)


class Controller(nn.Module):
    """The ENAS controller of NAS-Bench-201: an LSTM choosing one op per edge."""

    def __init__(self, edges: int = len(EDGES), ops: int = len(OPS), size: int = 32,
                 layers: int = 2, tanh_constant: float = 2.5, temperature: float = 5.0) -> None:
        super().__init__()
        self.edges, self.tanh_constant, self.temperature = edges, tanh_constant, temperature
        self.start = nn.Parameter(torch.empty(1, 1, size))
        self.lstm = nn.LSTM(size, size, layers)
        self.embedding = nn.Embedding(ops, size)
        self.predict = nn.Linear(size, ops)
        lstm = dict(self.lstm.named_parameters())  # the reference initialises its first layer
        for weight in (self.start, lstm["weight_hh_l0"], lstm["weight_ih_l0"],
                       self.embedding.weight, self.predict.weight):
            nn.init.uniform_(weight, -0.1, 0.1)

    def forward(self, gen: torch.Generator,  # type: ignore[override]
                forced: Choice | None = None) -> tuple[torch.Tensor, torch.Tensor, Choice]:
        """Sample a cell: ``(sum of log-probabilities, sum of entropies, op indices)``; with
        *forced* (the first ops of a cell, or all), their log-probability instead of a sample."""
        inputs, state = self.start, None
        log_probs, entropies, choice = [], [], []
        for edge in range(self.edges if forced is None else len(forced)):
            out, state = self.lstm(inputs, state)
            logits = self.tanh_constant * torch.tanh(self.predict(out).view(-1) / self.temperature)
            logp = logits.log_softmax(-1)
            index = forced[edge] if forced is not None else int(
                torch.multinomial(logp.detach().exp(), 1, generator=gen))
            log_probs.append(logp[index])
            entropies.append(-(logp.exp() * logp).sum())
            choice.append(index)
            inputs = self.embedding(torch.tensor([[index]]))
        return torch.stack(log_probs).sum(), torch.stack(entropies).sum(), tuple(choice)


class ENAS(Strategy):
    """``enas``: shared weights under controller samples; REINFORCE for the controller."""

    def __init__(self, net: Supernet, settings: SearchSettings, gen: torch.Generator) -> None:
        super().__init__(net, settings, gen)
        self.controller = Controller()
        self.adam = arch_adam(list(self.controller.parameters()), settings)
        self.baseline: float | None = None
        self.last_entropy = 0.0

    def sample(self) -> Choice:
        """One cell from the controller (no gradient)."""
        with torch.no_grad():
            _, entropy, choice = self.controller(self.gen)
        self.last_entropy = float(entropy.detach()) / len(EDGES)
        return choice

    def step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats) -> None:
        """A weight step under a controller sample."""
        self.weight_step(batch, weights, stats, Path(self.sample()))

    def end_epoch(self, data: SearchData, stats: EpochStats) -> None:
        """Train the controller on the validation batches (rewards counted in *stats*)."""
        self.train_controller(lambda i, choice: self._accuracy(data, i, choice, stats))

    @torch.no_grad()
    def _accuracy(self, data: SearchData, i: int, choice: Choice, stats: EpochStats) -> float:
        was_training = self.net.training
        self.net.eval()
        x, y = data.valid_batch(i)
        logits = self.net(x, Path(choice))
        self.net.train(was_training)
        stats.add_arch(logits, y)
        return float((logits.argmax(1) == y).float().mean())

    def train_controller(self, reward: Callable[[int, Choice], float]) -> None:
        """``controller_steps`` updates, each averaging ``controller_aggregate`` samples'
        ``-log p(cell) * (reward(i, cell) + w * entropy - baseline)``."""
        settings, aggregate = self.settings, self.settings.controller_aggregate
        self.controller.train()
        self.adam.zero_grad(set_to_none=True)
        for i in range(settings.controller_steps * aggregate):
            log_prob, entropy, choice = self.controller(self.gen)
            self.last_entropy = float(entropy.detach()) / len(EDGES)
            value = reward(i, choice) + settings.entropy_weight * float(entropy.detach())
            decay = settings.baseline_decay
            self.baseline = value if self.baseline is None else (
                decay * self.baseline + (1 - decay) * value)
            (-log_prob * (value - self.baseline) / aggregate).backward()
            if (i + 1) % aggregate == 0:
                nn.utils.clip_grad_norm_(self.controller.parameters(), 5.0)
                self.adam.step()
                self.adam.zero_grad(set_to_none=True)

    def current(self, data: SearchData, final: bool) -> Choice:
        """The best-scoring of the controller's samples."""
        count = self.settings.candidates if final else min(EPOCH_SAMPLES, self.settings.candidates)
        return choose_by_score(self, [self.sample() for _ in range(count)], data)

    def entropy(self) -> float:
        """Per-edge entropy of the controller along its last sample."""
        return self.last_entropy
