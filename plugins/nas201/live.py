"""The ``live`` evaluator: trains each NAS-Bench-201 cell for real and reports what it measured.

A trial's value is the accuracy (%) on the benchmark's evaluation split after the last epoch
trained; its cost is the real wall time of building and training the network and evaluating it
(the images are loaded once, when the evaluator is made, and not charged). One line per epoch
goes to *log* (stdout by default)::

    live: trial=0 epoch=1/2 lr=0.1 train_loss=2.32 train_accuracy=12.5 eval_loss=2.29 ...

Fidelity = epochs of the fixed schedule: a trial at fidelity ``f`` trains the first ``round(f)``
epochs of the ``epochs``-epoch cosine schedule (as NATS-Bench's BOHB used the 12-epoch one);
``None`` trains all of them. Every trial trains with the evaluator's ``seed`` (the same cell gives
the same curve on a CPU); the searcher has its own seed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

import torch

from driver.search import Evaluator, SearchSpace, Trial, TrialResult
from plugins.nas201.costs import (
    CELLS_PER_STAGE, CHANNELS, NetworkShape, flop_count, param_count, shape_of,
)
from plugins.nas201.images import BenchmarkImages, load_images
from plugins.nas201.space import arch_to_index
from plugins.nas201.schedule import NB201_SEEDS, SEARCH_DEFAULT_EPOCHS, settings_for
from plugins.nas201.training import EpochResult, Trainer, resolve_device


def _print_line(line: str) -> None:
    print(line, flush=True)


def on_device(images: BenchmarkImages, device: torch.device) -> BenchmarkImages:
    """*images* with their tensors moved to *device* (once, not per trial)."""
    return replace(images, train_x=images.train_x.to(device), train_y=images.train_y.to(device),
                   eval_x=images.eval_x.to(device), eval_y=images.eval_y.to(device))


class LiveEvaluator(Evaluator):
    """Trains cells on *dataset*'s network with the *mode*'s settings (see module docstring).

    *data* is the image source (``digits`` in toy mode, ``files`` in full mode by default;
    ``synthetic`` for speed runs), *data_dir* where ``files`` are. *epochs* (None or 0: the
    default) replaces the mode's schedule length: toy 2; full 12, the paper's search reward (200
    is the benchmark's table).
    """

    def __init__(self, space: SearchSpace | None = None, dataset: str = "cifar10-valid",
                 mode: str = "toy", data: str | None = None, data_dir: str | None = None,
                 epochs: int | None = None, seed: int = NB201_SEEDS[0], device: str | None = None,
                 channels: int = CHANNELS, cells_per_stage: int = CELLS_PER_STAGE,
                 log: Callable[[str], None] | None = None) -> None:
        self.settings = settings_for(mode, epochs, SEARCH_DEFAULT_EPOCHS)
        self.dataset, self.mode, self.seed = dataset, mode, seed
        benchmark = shape_of(dataset)
        self.shape = NetworkShape(benchmark.num_classes, benchmark.image_size, channels,
                                  cells_per_stage)
        source = data or ("digits" if mode == "toy" else "files")
        self.device = resolve_device(device)
        # loaded now, so that a missing file fails before the search starts
        self.images = on_device(load_images(dataset, source, data_dir, seed=seed), self.device)
        self.log = log or _print_line

    def evaluate(self, trial: Trial) -> TrialResult:
        """Train *trial*'s cell for its fidelity's epochs; value = last evaluation accuracy."""
        arch = str(trial.config)
        index = arch_to_index(arch)
        if index < 0:
            raise ValueError(f"live evaluator: {trial.config!r} is not a NAS-Bench-201 arch string")
        start = time.perf_counter()
        trainer = self.trainer_for(arch)
        prefix = f"live: trial={trial.number} "
        results = trainer.run(self._epochs_for(trial.fidelity),
                              lambda r: self.log(prefix + r.line()))
        cost_s = time.perf_counter() - start
        return TrialResult(trial, results[-1].eval_accuracy, cost_s,
                           self._info(arch, index, results))

    def trainer_for(self, arch: str) -> Trainer:
        """A fresh trainer of *arch* with this evaluator's images, settings, seed and device."""
        return Trainer(arch, self.images, self.settings, num_classes=self.shape.num_classes,
                       seed=self.seed, device=self.device, channels=self.shape.channels,
                       cells_per_stage=self.shape.cells_per_stage)

    def _epochs_for(self, fidelity: float | None) -> int:
        if fidelity is None:
            return self.settings.epochs
        return min(self.settings.epochs, max(1, round(fidelity)))

    def _info(self, arch: str, index: int, results: list[EpochResult]) -> dict[str, Any]:
        last = results[-1]
        return {
            "valid_accuracy": last.eval_accuracy, "eval_split": self.images.eval_split,
            "index": index, "arch": arch, "mode": self.mode, "seed": self.seed,
            "epochs_trained": last.epoch, "schedule_epochs": last.epochs,
            "eval_loss": last.eval_loss,
            "train_accuracy": last.train_accuracy, "train_loss": last.train_loss,
            "training_time_s": sum(r.train_time_s for r in results),
            "latency_s": last.latency_s, "device": str(self.device),
            "params_mb": param_count(arch, self.shape) / 1e6,
            "flops_m": flop_count(arch, self.shape) / 1e6,
        }

    def max_fidelity(self) -> float | None:
        """The schedule's number of epochs."""
        return float(self.settings.epochs)

