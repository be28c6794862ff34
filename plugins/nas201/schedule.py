"""The training schedules of NAS-Bench-201, and the ``toy`` and ``full`` modes (pure Python).

The schedule of the benchmark data (``configs/nas-benchmark/hyper-opts/{12E,200E}.config`` in the
reference repository): SGD, lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4, batch 256, plain
cross-entropy, the learning rate of epoch ``e`` (from 0) ``0.05 * (1 + cos(pi * e / E))``,
constant within the epoch, E = 12 or 200; random horizontal flip and random crop with zero padding
(4 pixels for CIFAR, 2 for ImageNet16-120; ``plugins/nas201/images.py``).

Modes (:func:`settings_for`), one ``mode`` parameter for every NAS task: ``full`` is that schedule
on the whole data (for a GPU); ``toy`` (the default) keeps the optimiser, the schedule's shape, the
network and the augmentation, but trains :data:`TOY_EPOCHS` epochs of :data:`TOY_BATCHES` batches
of :data:`TOY_BATCH_SIZE` images and evaluates :data:`TOY_EVAL_IMAGES` images (a CPU run of well
under a minute).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driver.errors import ConfigError, did_you_mean

MODES = ("toy", "full")
#: Where the images come from: the data set's own files, scikit-learn's digits, random pixels.
SOURCES = ("files", "digits", "synthetic")
PAPER_EPOCHS = (12, 200)  # the two schedules of the benchmark data
FULL_DEFAULT_EPOCHS = 200  # training one cell: the schedule of the benchmark's table
SEARCH_DEFAULT_EPOCHS = 12  # the live evaluator in full mode: the paper's search reward
TOY_EPOCHS, TOY_BATCHES, TOY_BATCH_SIZE, TOY_EVAL_IMAGES = 2, 4, 16, 64
NB201_SEEDS = (777, 888, 999)


@dataclass(frozen=True)
class TrainingSettings:
    """One training run's schedule; ``train_batches``/``eval_images`` cap an epoch (toy mode)."""

    epochs: int
    learning_rate: float = 0.1
    min_learning_rate: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256
    augment: bool = True
    train_batches: int | None = None  # None: every training image once per epoch
    eval_images: int | None = None  # None: the whole evaluation split

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "train_batches", "eval_images"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"NAS-Bench-201 training: {name}={value!r} must be an int >= 1")

    def learning_rate_at(self, epoch: int) -> float:
        """Cosine annealing per epoch (*epoch* from 0), as the benchmark's scheduler."""
        span = self.learning_rate - self.min_learning_rate
        return self.min_learning_rate + span * (1 + math.cos(math.pi * epoch / self.epochs)) / 2


def check_mode(mode: str) -> None:
    """ConfigError unless *mode* is ``toy`` or ``full``."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}{did_you_mean(mode, MODES)}; expected 'toy' (a few "
                          f"batches of digits on a CPU) or 'full' (the paper's setting, a GPU)")


def check_source(source: str) -> None:
    """ConfigError unless *source* is one of :data:`SOURCES`."""
    if source not in SOURCES:
        raise ConfigError(f"NAS-Bench-201 data source {source!r}{did_you_mean(source, SOURCES)}; "
                          f"expected one of {', '.join(SOURCES)}")


def settings_for(mode: str, epochs: int | None = None,
                 full_epochs: int = FULL_DEFAULT_EPOCHS) -> TrainingSettings:
    """The settings of *mode*; *epochs* (None or 0: the default) replaces its length (toy 2,
    full *full_epochs*)."""
    check_mode(mode)
    if mode == "full":
        return TrainingSettings(epochs or full_epochs)
    return TrainingSettings(epochs or TOY_EPOCHS, batch_size=TOY_BATCH_SIZE,
                            train_batches=TOY_BATCHES, eval_images=TOY_EVAL_IMAGES)
