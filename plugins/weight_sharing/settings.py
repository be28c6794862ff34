"""The six weight-sharing algorithms' settings (NAS-Bench-201's, section 6) and their toy mode.

Pure Python: the plugin registers the algorithm classes (``plugins.weight_sharing.algorithms``)
without importing torch; a search imports it when it runs.

The paper's setting (``mode=full``) is the supernet C=16, N=5 on CIFAR-10's two 25k halves (weights
on one, architecture on the other) at 32x32. ``mode=toy`` keeps each algorithm's optimisers,
schedules and rules, but shrinks the supernet (C=8, N=1), the data (a few batches of
scikit-learn's digits at 32x32), the epochs and the numbers of candidates and controller steps,
so that a search takes seconds on a CPU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from driver.errors import ConfigError, did_you_mean
from plugins.nas201.schedule import check_mode

#: The two BatchNorm settings of the cells: the paper's (running statistics kept, the scripts'
#: ``--track_running_stats 1``) and NATS-Bench's rerun (statistics off: always batch statistics).
BN_VARIANTS = {"paper": True, "nats": False}


@dataclass(frozen=True)
class SearchSettings:
    """Everything a weight-sharing search is run with; the defaults are DARTS's (section 6)."""

    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 0.025
    min_learning_rate: float = 0.001
    lr_period: int | None = None  # cosine T_max in epochs; None: the whole search (ENAS: 10)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0  # of the weights' gradient norm; None: no clipping
    arch_learning_rate: float = 3e-4  # Adam on alpha (ENAS: on the controller)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    arch_eps: float = 1e-8
    eval_batch_size: int = 512  # a candidate is scored on one validation batch of this size
    candidates: int = 100  # SETN, RSPS, ENAS: cells scored at the end
    tau_max: float = 10.0  # GDAS
    tau_min: float = 0.1
    unroll_r: float = 1e-2  # DARTS-V2: finite-difference step of the Hessian-vector product
    controller_steps: int = 50  # ENAS: controller updates per epoch
    controller_aggregate: int = 20  # ENAS: samples averaged per controller update
    entropy_weight: float = 1e-4  # ENAS: reward bonus per nat of the sampled cell's entropy
    baseline_decay: float = 0.99  # ENAS: EMA of the reward
    channels: int = 16
    cells_per_stage: int = 5
    train_batches: int | None = None  # None: the whole weight half once per epoch
    track_running_stats: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or value is None or isinstance(value, tuple):
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"weight-sharing setting {f.name}={value!r}: expected a "
                                  f"finite number >= 0")
        for name in ("epochs", "batch_size", "eval_batch_size", "candidates", "channels",
                     "cells_per_stage", "controller_aggregate"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"weight-sharing setting {name}={getattr(self, name)!r}: "
                                  f"expected an int >= 1")

    def learning_rate_at(self, epoch: int) -> float:
        """The weights' learning rate in *epoch* (from 0): cosine per epoch with period
        ``lr_period`` (the reference's scheduler; ENAS's period 10 makes it oscillate)."""
        period = self.lr_period or self.epochs
        span = self.learning_rate - self.min_learning_rate
        return self.min_learning_rate + span * (1 + math.cos(math.pi * epoch / period)) / 2

    def tau_at(self, epoch: int) -> float:
        """GDAS's temperature: linear from ``tau_max`` (first epoch) to ``tau_min`` (last)."""
        if self.epochs == 1:
            return self.tau_max
        return self.tau_max - (self.tau_max - self.tau_min) * epoch / (self.epochs - 1)


DARTS = SearchSettings()
GDAS = replace(DARTS, epochs=250)
SETN = replace(GDAS, grad_clip=None)
RSPS = replace(GDAS)
ENAS = replace(DARTS, epochs=250, batch_size=128, learning_rate=0.05, min_learning_rate=0.0005,
               lr_period=10, weight_decay=2.5e-4, eval_batch_size=128, arch_learning_rate=1e-3,
               arch_betas=(0.0, 0.999), arch_weight_decay=0.0, arch_eps=1e-3)
#: The paper's setting of each algorithm (``mode=full``).
PAPER: dict[str, SearchSettings] = {"darts-v1": DARTS, "darts-v2": DARTS, "gdas": GDAS,
                                    "setn": SETN, "rsps": RSPS, "enas": ENAS}
#: What toy mode changes, for every algorithm.
TOY: dict[str, Any] = {"epochs": 3, "batch_size": 16, "eval_batch_size": 64, "candidates": 10,
       "controller_steps": 4, "controller_aggregate": 2, "channels": 8, "cells_per_stage": 1,
       "train_batches": 4}


def settings_for(paper: SearchSettings, mode: str, bn: str = "paper",
                 overrides: Mapping[str, Any] | None = None) -> SearchSettings:
    """*paper*'s settings in *mode* with the *bn* variant, then *overrides* (checked by name)."""
    check_mode(mode)
    if bn not in BN_VARIANTS:
        raise ConfigError(f"bn={bn!r}{did_you_mean(bn, BN_VARIANTS)}; expected 'paper' (running "
                          f"statistics, as NAS-Bench-201) or 'nats' (NATS-Bench's: BN statistics off)")
    chosen = replace(paper, **TOY) if mode == "toy" else paper
    chosen = replace(chosen, track_running_stats=BN_VARIANTS[bn])
    known = {f.name for f in fields(SearchSettings)}
    for key in overrides or {}:
        if key not in known:
            raise ConfigError(f"no weight-sharing setting {key!r}{did_you_mean(key, known)}; "
                              f"settings: {', '.join(sorted(known))}")
    return replace(chosen, **_typed(chosen, dict(overrides or {})))


def _typed(settings: SearchSettings, overrides: dict[str, Any]) -> dict[str, Any]:
    """Ints given for float settings become floats; lists become tuples (from the command line)."""
    for key, value in overrides.items():
        current = getattr(settings, key)
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            overrides[key] = float(value)
        elif isinstance(value, list):
            overrides[key] = tuple(value)
    return overrides


def as_dict(settings: SearchSettings) -> dict[str, Any]:
    """The settings as a JSON-ready dict (for the task's config line)."""
    return dataclasses.asdict(settings)


#: The published accuracies (%) of the cells found (NAS-Bench-201, section 6 of REFERENCE.md):
#: CIFAR-10 valid, CIFAR-100 x-valid, ImageNet16-120 x-valid; mean of 3 runs in full mode.
PAPER_RESULTS: dict[str, tuple[float, float, float]] = {
    "darts-v1": (39.77, 15.03, 16.43), "darts-v2": (39.77, 15.03, 16.43),
    "gdas": (89.89, 71.34, 41.59), "setn": (84.04, 58.86, 33.06),
    "enas": (37.51, 13.37, 15.06), "rsps": (80.42, 52.12, 27.22),
}
