"""Training a NAS-Bench-201 cell live, with the benchmark's schedule; reproducible epoch by epoch.

The schedule and the modes are in ``plugins/nas201/schedule.py``.

Reproducibility: the weights come from ``seed``; epoch ``e``'s data order and augmentation from
their own generators seeded by ``(seed, e)``. So the learning rate, the order and the crops of an
epoch depend only on the seed, the epoch and the total number of epochs, never on what ran
before: training can stop after any epoch and continue exactly from :meth:`Trainer.state_dict`
(weights, BN statistics, momentum buffers and the epoch count).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from driver.errors import ConfigError
from plugins.nas201.costs import CELLS_PER_STAGE, CHANNELS
from plugins.nas201.images import BenchmarkImages, random_crop_flip
from plugins.nas201.network import build_network
from plugins.nas201.schedule import NB201_SEEDS, TrainingSettings


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None: the first GPU if there is one, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device={device!r}: {exc}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}: no CUDA device is visible; use device=cpu or auto")
    return chosen


@dataclass(frozen=True)
class EpochResult:
    """What one epoch gave: losses and accuracies (%) and the seconds it took."""

    epoch: int  # 1-based: the number of epochs done
    epochs: int  # of the schedule
    learning_rate: float
    train_loss: float
    train_accuracy: float
    eval_loss: float
    eval_accuracy: float
    train_time_s: float
    eval_time_s: float
    eval_batches: int

    def line(self) -> str:
        """One log line; floats as ``repr`` (they read back exactly); the times come last."""
        return (f"epoch={self.epoch}/{self.epochs} lr={self.learning_rate!r} "
                f"train_loss={self.train_loss!r} train_accuracy={self.train_accuracy!r} "
                f"eval_loss={self.eval_loss!r} eval_accuracy={self.eval_accuracy!r} "
                f"train_time_s={self.train_time_s!r} eval_time_s={self.eval_time_s!r}")

    @property
    def latency_s(self) -> float:
        """Seconds per evaluation batch (forward pass and batch preparation)."""
        return self.eval_time_s / max(self.eval_batches, 1)


def stream_seed(seed: int, *stream: int) -> int:
    """An independent 63-bit seed for the sub-stream *stream* of *seed* (NumPy SeedSequence)."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1, np.uint64)[0] >> 1)


class Trainer:
    """Trains one cell's network on *images* with *settings*; :meth:`train_epoch` runs the next
    epoch of the schedule and evaluates."""

    def __init__(self, arch: str, images: BenchmarkImages, settings: TrainingSettings, *,
                 num_classes: int, seed: int = NB201_SEEDS[0], device: torch.device | None = None,
                 channels: int = CHANNELS, cells_per_stage: int = CELLS_PER_STAGE) -> None:
        self.settings, self.seed = settings, seed
        self.device = device or torch.device("cpu")
        with torch.random.fork_rng(devices=[]):  # seed the weights, leave the caller's RNG alone
            torch.manual_seed(seed)
            self.model = build_network(arch, num_classes, channels, cells_per_stage)
        self.model.to(self.device)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=settings.learning_rate, momentum=settings.momentum,
            nesterov=settings.nesterov, weight_decay=settings.weight_decay)
        self.train_x, self.train_y, self.eval_x, self.eval_y = (
            t.to(self.device) for t in (images.train_x, images.train_y, images.eval_x,
                                        images.eval_y))
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(images.mean, device=self.device).view(shape)
        self.std = torch.tensor(images.std, device=self.device).view(shape)
        self.crop_padding = images.crop_padding
        self.epoch = 0  # epochs done

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float().div_(255) - self.mean) / self.std

    def _train_batches(self, epoch: int) -> list[torch.Tensor]:
        order_gen = torch.Generator().manual_seed(stream_seed(self.seed, epoch, 0))
        order = torch.randperm(len(self.train_y), generator=order_gen).to(self.device)
        batches = list(order.split(self.settings.batch_size))  # the last may be partial
        return batches[: self.settings.train_batches]

    def train_epoch(self) -> EpochResult:
        """Train epoch ``self.epoch`` of the schedule, evaluate, and count it done."""
        if self.epoch >= self.settings.epochs:
            raise ValueError(f"all {self.settings.epochs} epochs of the schedule are done")
        epoch, lr = self.epoch, self.settings.learning_rate_at(self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        augment_gen = torch.Generator(self.device).manual_seed(stream_seed(self.seed, epoch, 1))
        self.model.train()
        stats = torch.zeros(3, dtype=torch.float64, device=self.device)  # correct, seen, loss sum
        start = time.perf_counter()
        for index in self._train_batches(epoch):
            x = self.train_x[index]
            if self.settings.augment:
                x = random_crop_flip(x, augment_gen, self.crop_padding)
            self._step(self._float(x), self.train_y[index], stats)
        correct, seen, loss_sum = stats.tolist()  # waits for the device
        train_time_s = time.perf_counter() - start
        eval_loss, eval_accuracy, eval_time_s, eval_batches = self.evaluate()
        self.epoch += 1
        return EpochResult(self.epoch, self.settings.epochs, lr, loss_sum / seen,
                           100 * correct / seen, eval_loss, eval_accuracy, train_time_s,
                           eval_time_s, eval_batches)

    def _step(self, x: torch.Tensor, y: torch.Tensor, stats: torch.Tensor) -> None:
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        stats[0] += (logits.argmax(1) == y).sum()
        stats[1] += len(y)
        stats[2] += loss.detach() * len(y)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, float, int]:
        """``(mean loss, accuracy %, seconds, batches)`` on the evaluation images (eval mode)."""
        self.model.eval()
        n = min(len(self.eval_y), self.settings.eval_images or len(self.eval_y))
        stats = torch.zeros(3, dtype=torch.float64, device=self.device)
        start = time.perf_counter()
        batches = torch.arange(n, device=self.device).split(self.settings.batch_size)
        for index in batches:
            logits, y = self.model(self._float(self.eval_x[index])), self.eval_y[index]
            stats[0] += (logits.argmax(1) == y).sum()
            stats[1] += len(y)
            stats[2] += F.cross_entropy(logits, y, reduction="sum")
        correct, seen, loss_sum = stats.tolist()
        return loss_sum / seen, 100 * correct / seen, time.perf_counter() - start, len(batches)

    def run(self, stop_epoch: int | None = None,
            log: Callable[[EpochResult], None] | None = None) -> list[EpochResult]:
        """Train the remaining epochs up to *stop_epoch* (default: the schedule's last)."""
        results = []
        while self.epoch < (stop_epoch or self.settings.epochs):
            results.append(self.train_epoch())
            if log is not None:
                log(results[-1])
        return results

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, BN statistics, optimiser, epoch."""
        return {"epoch": self.epoch, "seed": self.seed, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a trainer of the same cell, seed and settings."""
        if state["seed"] != self.seed:
            raise ValueError(f"checkpoint of seed {state['seed']!r}, "
                             f"this trainer has {self.seed!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
