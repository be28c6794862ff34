"""The search loop the six weight-sharing algorithms share, and what they share besides it.

One search: build the supernet (seeded), then for each epoch set the weights' learning rate,
run the algorithm's step on pairs of batches (one from the weights' half of the data, one from the
architecture's half), let it finish the epoch (ENAS trains its controller), ask it for its current
cell, and log one line::

    search: epoch=1/3 lr=0.025 train_loss=2.31 train_accuracy=9.4 arch_accuracy=12.5 \\
        entropy=1.6094 tau=10.0 time_s=1.2 table_accuracy=84.1 arch=|nor_conv_3x3~0|+|...|

(``tau`` only for GDAS; ``table_accuracy`` is the cell's mean cifar10-valid accuracy in the
NAS-Bench-201 table.) The algorithm's last choice is the search's result.

Reproducibility: the weights and alpha come from ``seed``; epoch ``e``'s data order and
augmentation from generators seeded by ``(seed, e)``; the algorithm's own sampling (Gumbel noise,
random paths, the controller) from one generator seeded by ``seed``. On a CPU with deterministic
algorithms the same seed gives the same trajectory of cells.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from plugins.nas201.images import BenchmarkImages, load_images, random_crop_flip
from plugins.nas201.space import EDGES, OPS, arch_string
from plugins.nas201.supernet import Mixture, Path, Plan, Supernet, choice_to_ops
from plugins.nas201.training import resolve_device, stream_seed
from plugins.weight_sharing.settings import SearchSettings

if TYPE_CHECKING:
    from plugins.weight_sharing.algorithms import WeightSharingNAS

Choice = tuple[int, ...]  # one op index (in OPS) per edge
SEARCH_DATASET = "cifar10-valid"  # the paper searched on CIFAR-10's two 25k halves


@dataclass(frozen=True)
class Batch:
    """A weight batch and an architecture batch, normalised (and augmented) on the device."""

    x: torch.Tensor
    y: torch.Tensor
    arch_x: torch.Tensor
    arch_y: torch.Tensor


@dataclass
class EpochStats:
    """Running sums of one epoch: the weight steps' loss and hits, the architecture steps' hits."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    arch_correct: int = 0
    arch_seen: int = 0

    def add_weights(self, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        """Count a weight step."""
        self.loss_sum += float(loss) * len(y)
        self.correct += int((logits.argmax(1) == y).sum())
        self.seen += len(y)

    def add_arch(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Count an architecture step (or a candidate's evaluation)."""
        self.arch_correct += int((logits.argmax(1) == y).sum())
        self.arch_seen += len(y)


@dataclass(frozen=True)
class EpochReport:
    """One search epoch, as logged."""

    epoch: int  # 1-based
    epochs: int
    learning_rate: float
    train_loss: float
    train_accuracy: float
    arch_accuracy: float
    entropy: float  # mean over edges of the architecture distribution's entropy (nats)
    tau: float | None
    time_s: float
    arch: str
    table_accuracy: float

    def line(self) -> str:
        """The log line (floats as repr; the arch string last, it holds ``|`` and ``~``)."""
        tau = "" if self.tau is None else f" tau={self.tau!r}"
        return (f"search: epoch={self.epoch}/{self.epochs} lr={self.learning_rate!r} "
                f"train_loss={self.train_loss!r} train_accuracy={self.train_accuracy!r} "
                f"arch_accuracy={self.arch_accuracy!r} entropy={self.entropy!r}{tau} "
                f"time_s={self.time_s!r} table_accuracy={self.table_accuracy!r} "
                f"arch={self.arch}")


@dataclass(frozen=True)
class SearchOutcome:
    """What a search gave: the chosen cell, its epochs, the seconds the search took."""

    arch: str
    epochs: tuple[EpochReport, ...]
    search_time_s: float
    trajectory: tuple[str, ...] = field(default=())  # the cell after each epoch


class SearchData:
    """The two halves of the search data on the device: weights train on ``train_x``, the
    architecture on ``eval_x`` (CIFAR-10's two 25k halves; digits' 80/20 split in toy mode)."""

    def __init__(self, images: BenchmarkImages, settings: SearchSettings, seed: int,
                 device: torch.device) -> None:
        self.settings, self.seed, self.device = settings, seed, device
        self.train_x, self.train_y, self.eval_x, self.eval_y = (
            t.to(device) for t in (images.train_x, images.train_y, images.eval_x, images.eval_y))
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(images.mean, device=device).view(shape)
        self.std = torch.tensor(images.std, device=device).view(shape)
        self.crop_padding = images.crop_padding

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalised floats."""
        return (x.float().div_(255) - self.mean) / self.std

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The pairs of epoch *epoch*: both halves shuffled, flipped and cropped (seeded)."""
        bs, cap = self.settings.batch_size, self.settings.train_batches
        orders = [self._order(len(y), epoch, stream) for stream, y in
                  enumerate((self.train_y, self.eval_y))]
        count = min(len(orders[0]) // bs, len(orders[1]) // bs) or 1
        gen = torch.Generator(self.device).manual_seed(stream_seed(self.seed, epoch, 2))
        for i in range(min(count, cap or count)):
            w, a = (order[i * bs:(i + 1) * bs] for order in orders)
            yield Batch(self._augment(self.train_x[w], gen), self.train_y[w],
                        self._augment(self.eval_x[a], gen), self.eval_y[a])

    def _order(self, n: int, epoch: int, stream: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(stream_seed(self.seed, epoch, stream))
        return torch.randperm(n, generator=gen).to(self.device)

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.normalise(random_crop_flip(x, gen, self.crop_padding))

    def valid_batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The *i*-th validation batch (``eval_batch_size`` images of the architecture half, in
        order, cycling): what a candidate cell is scored on."""
        n = len(self.eval_y)
        size = min(self.settings.eval_batch_size, n)
        start = (i * size) % max(n - size + 1, 1)
        index = torch.arange(start, start + size, device=self.device)
        return self.normalise(self.eval_x[index]), self.eval_y[index]


class WeightOptimizer:
    """SGD on the supernet's weights with the settings' schedule, momentum and clipping."""

    def __init__(self, net: nn.Module, settings: SearchSettings) -> None:
        self.params = [p for p in net.parameters()]
        self.settings = settings
        self.sgd = torch.optim.SGD(self.params, lr=settings.learning_rate,
                                   momentum=settings.momentum, nesterov=settings.nesterov,
                                   weight_decay=settings.weight_decay)

    @property
    def lr(self) -> float:
        """The current learning rate."""
        return float(self.sgd.param_groups[0]["lr"])

    def set_epoch(self, epoch: int) -> None:
        """Set the learning rate of *epoch*."""
        for group in self.sgd.param_groups:
            group["lr"] = self.settings.learning_rate_at(epoch)

    def step(self, loss: torch.Tensor) -> None:
        """Backward into the weights only (not alpha), clip, step."""
        self.sgd.zero_grad(set_to_none=True)
        loss.backward(inputs=self.params)
        if self.settings.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip)
        self.sgd.step()


def arch_adam(params: Sequence[torch.Tensor], settings: SearchSettings) -> torch.optim.Adam:
    """The architecture optimiser of section 6 (Adam with the settings' lr, betas, decay)."""
    return torch.optim.Adam(params, lr=settings.arch_learning_rate, betas=settings.arch_betas,
                            eps=settings.arch_eps, weight_decay=settings.arch_weight_decay)


def edge_entropy(logits: torch.Tensor) -> float:
    """Mean over edges of the entropy (nats) of ``softmax(logits)`` per edge."""
    logp = logits.detach().log_softmax(-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


def to_arch(choice: Sequence[int]) -> str:
    """The arch string of a choice of op indices."""
    return arch_string(choice_to_ops(choice))


@torch.no_grad()
def score_candidates(net: nn.Module, candidates: Sequence[Choice], data: SearchData) -> list[float]:
    """Accuracy (%) of each candidate cell on one validation batch each (the i-th batch for the
    i-th candidate), the supernet in eval mode: SETN's, RSPS's and ENAS's own evaluation."""
    was_training = net.training
    net.eval()
    scores = []
    for i, choice in enumerate(candidates):
        x, y = data.valid_batch(i)
        scores.append(100.0 * float((net(x, Path(choice)).argmax(1) == y).float().mean()))
    net.train(was_training)
    return scores


def best_of(candidates: Sequence[Choice], scores: Sequence[float]) -> Choice:
    """The first candidate with the highest score."""
    return candidates[max(range(len(scores)), key=scores.__getitem__)]


def choose_by_score(strategy: Strategy, candidates: Sequence[Choice], data: SearchData) -> Choice:
    """Score *candidates* (:func:`score_candidates`), remember the best score, return the best."""
    scores = score_candidates(strategy.net, candidates, data)
    strategy.best_score = max(scores)
    strategy.last_scores = (tuple(candidates), tuple(scores))
    return best_of(candidates, scores)


def random_choices(count: int, gen: torch.Generator) -> list[Choice]:
    """*count* cells drawn uniformly (each edge's op independently)."""
    drawn = torch.randint(len(OPS), (count, len(EDGES)), generator=gen)
    return [tuple(int(i) for i in row) for row in drawn]


class Strategy:
    """One algorithm's part of the loop. Subclasses implement :meth:`step` and :meth:`current`;
    the other methods have defaults."""

    def __init__(self, net: Supernet, settings: SearchSettings, gen: torch.Generator) -> None:
        self.net, self.settings, self.gen = net, settings, gen
        self.epoch = 0
        self.best_score: float | None = None  # the accuracy of the last cell chosen by scoring
        self.last_scores: tuple[tuple[Choice, ...], tuple[float, ...]] = ((), ())

    def begin_epoch(self, epoch: int) -> None:
        """Called before the epoch's first step."""
        self.epoch = epoch

    def step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats) -> None:
        """One iteration: a weight step (and an architecture step), counted in *stats*."""
        raise NotImplementedError

    def weight_step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats,
                    plan: Plan) -> None:
        """A weight step on the weight batch under *plan*."""
        logits = self.net(batch.x, plan)
        loss = F.cross_entropy(logits, batch.y)
        weights.step(loss)
        stats.add_weights(logits, batch.y, loss.detach())

    def end_epoch(self, data: SearchData, stats: EpochStats) -> None:
        """Called after the epoch's last step (ENAS trains its controller here)."""

    def current(self, data: SearchData, final: bool) -> Choice:
        """The cell the algorithm would choose now (*final*: at the end of the search)."""
        raise NotImplementedError

    def entropy(self) -> float:
        """Mean per-edge entropy of the architecture distribution (nats)."""
        raise NotImplementedError

    def tau(self) -> float | None:
        """GDAS's temperature this epoch; None for the others."""
        return None


class AlphaStrategy(Strategy):
    """An algorithm with architecture parameters alpha (edges x ops, 1e-3 * N(0, 1)) trained by
    :func:`arch_adam`; its cell is the argmax of alpha per edge (``none`` included)."""

    def __init__(self, net: Supernet, settings: SearchSettings, gen: torch.Generator) -> None:
        super().__init__(net, settings, gen)
        like = next(net.parameters())
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)).to(like))
        self.adam = arch_adam([self.alpha], settings)

    def mixture(self, detach: bool = False) -> Mixture:
        """The plan ``softmax(alpha)`` (detached for weight steps: no graph into alpha)."""
        weights = self.alpha.softmax(-1)
        return Mixture(weights.detach() if detach else weights)

    def arch_step(self, batch: Batch, stats: EpochStats, plan: Plan) -> None:
        """An Adam step of alpha on the architecture batch under *plan* (built from alpha)."""
        self.adam.zero_grad(set_to_none=True)
        logits = self.net(batch.arch_x, plan)
        F.cross_entropy(logits, batch.arch_y).backward(inputs=[self.alpha])
        self.adam.step()
        stats.add_arch(logits, batch.arch_y)

    def current(self, data: SearchData, final: bool) -> Choice:
        """The argmax of alpha on each edge."""
        return tuple(int(i) for i in self.alpha.detach().argmax(-1))

    def entropy(self) -> float:
        """Of ``softmax(alpha)``, mean over edges."""
        return edge_entropy(self.alpha)


def make_strategy(target: str, net: Supernet, settings: SearchSettings,
                  gen: torch.Generator) -> Strategy:
    """Import ``module:Class`` and make the strategy."""
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    strategy: Strategy = cls(net, settings, gen)
    return strategy


def search(algorithm: WeightSharingNAS, seed: int, log: Callable[[str], None],
           table_accuracy: Callable[[str], float]) -> SearchOutcome:
    """Run *algorithm*'s search (see the module docstring)."""
    settings = algorithm.settings
    device = resolve_device(algorithm.device)
    images = load_images(SEARCH_DATASET, algorithm.data, algorithm.data_dir, seed=seed,
                         synthetic_images=algorithm.synthetic_images)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Supernet(10, settings.channels, settings.cells_per_stage,
                       settings.track_running_stats).to(device)
        strategy = make_strategy(algorithm.strategy, net, settings,
                                 torch.Generator().manual_seed(stream_seed(seed, 1 << 20)))
    data = SearchData(images, settings, seed, device)
    weights = WeightOptimizer(net, settings)
    reports: list[EpochReport] = []
    for epoch in range(settings.epochs):
        reports.append(_run_epoch(strategy, data, weights, epoch, table_accuracy))
        log(reports[-1].line())
    arch = to_arch(strategy.current(data, final=True))
    return SearchOutcome(arch, tuple(reports), time.perf_counter() - start,
                         tuple(r.arch for r in reports))


def _run_epoch(strategy: Strategy, data: SearchData, weights: WeightOptimizer, epoch: int,
               table_accuracy: Callable[[str], float]) -> EpochReport:
    start = time.perf_counter()
    weights.set_epoch(epoch)
    strategy.begin_epoch(epoch)
    strategy.net.train()
    stats = EpochStats()
    for batch in data.epoch(epoch):
        strategy.step(batch, weights, stats)
    strategy.end_epoch(data, stats)
    arch = to_arch(strategy.current(data, final=False))
    seen = max(stats.seen, 1)
    if stats.arch_seen:
        arch_accuracy = 100.0 * stats.arch_correct / stats.arch_seen
    else:  # no architecture step (RSPS): the chosen candidate's score
        arch_accuracy = strategy.best_score or 0.0
    return EpochReport(epoch + 1, strategy.settings.epochs, weights.lr, stats.loss_sum / seen,
                       100.0 * stats.correct / seen, arch_accuracy, strategy.entropy(), strategy.tau(), time.perf_counter() - start, arch,
                       table_accuracy(arch))
