"""Seconds per training epoch of NAS-Bench-201's toy configuration on the CPU, with images/s.

    python benchmarks/nas201_training.py              # --repeat 3 --threads 1
    python benchmarks/nas201_training.py --epochs-of full --batches 3   # full batches (256)

The toy configuration is what ``mode=toy`` trains: the benchmark's own network (C=16, N=5) at the
data set's input size, scikit-learn digits, batches of 16, 4 batches an epoch, the augmentation
and the optimiser of the paper. For a few cells it times ``Trainer.train_epoch`` (training
and evaluation, separately) and, as the reference in the same run, the same loop on the same
batches with the reference implementation's network (xautodl 1.0.0's ``TinyNetwork``: ``pip
install --no-deps xautodl==1.0.0``), the two interleaved. Prints medians and::

    RATIO nas201_training (our training images/s over xautodl's, same loop) = 1.05x (target >= 0.9)

``--epochs-of full`` times batches of the full setting (256 images) instead. GPU throughput:
``benchmarks/nas201_gpu_throughput.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace
from typing import Callable

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common import machine_line, print_ratio  # noqa: E402  (beside this script)
from plugins.nas201.live import LiveEvaluator  # noqa: E402
from plugins.nas201.space import index_to_arch  # noqa: E402
from plugins.nas201.training import EpochResult, Trainer  # noqa: E402

CELLS = (6111, 0, 11)  # cifar10-valid's best; index 0; convs, pools and a none edge
REFERENCE_INSTALL = "pip install --no-deps xautodl==1.0.0"


class ReferenceLogits(nn.Module):
    """xautodl's TinyNetwork returns (features, logits); the trainer wants logits."""

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        from xautodl.models.cell_infers.tiny_network import TinyNetwork
        from xautodl.models.cell_searchs.genotypes import Structure

        self.net = TinyNetwork(16, 5, Structure.str2structure(arch), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits only."""
        return self.net(x)[1]


def reference_trainer(trainer: Trainer, arch: str, num_classes: int) -> Trainer:
    """*trainer* (untrained) with the reference network, its own initial weights, and a fresh
    optimiser of the same kind."""
    trainer.model = ReferenceLogits(arch, num_classes).to(trainer.device)
    group = trainer.optimizer.param_groups[0]
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=group["lr"],
                                        momentum=group["momentum"], nesterov=group["nesterov"],
                                        weight_decay=group["weight_decay"])
    return trainer


def time_epochs(sides: list[Callable[[], Trainer]], repeat: int) -> list[list[EpochResult]]:
    """The first epoch of a fresh trainer of each side, *repeat* times, the sides interleaved
    (load changes hit both alike), after one warm-up epoch each."""
    for make in sides:
        make().train_epoch()
    timed: list[list[EpochResult]] = [[] for _ in sides]
    for _ in range(repeat):
        for make, results in zip(sides, timed):
            results.append(make().train_epoch())
    return timed


def summary(results: list[EpochResult], images: int) -> tuple[float, str]:
    """(training images/s, a readable line) from the median epoch."""
    train_s = statistics.median(r.train_time_s for r in results)
    eval_s = statistics.median(r.eval_time_s for r in results)
    rate = images / train_s
    return rate, f"train {train_s:7.3f} s/epoch ({rate:7.1f} images/s), eval {eval_s:6.3f} s"


def main(argv: list[str] | None = None) -> int:
    """Time the epochs, print the lines and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", default="cifar10-valid")
    parser.add_argument("--repeat", type=int, default=3, help="timed epochs per cell and side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--epochs-of", choices=("toy", "full"), default="toy",
                        help="batch size of the toy (16) or full (256) setting")
    parser.add_argument("--batches", type=int, default=0, help="batches an epoch (0: the mode's)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: one cell, one epoch")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        ReferenceLogits(index_to_arch(0), 10)
    except ImportError:
        print(f"the reference implementation is missing: {REFERENCE_INSTALL}", file=sys.stderr)
        return 2
    cells, repeat = (CELLS[:1], 1) if args.quick else (CELLS, args.repeat)
    live = LiveEvaluator(dataset=args.dataset, device="cpu", log=lambda line: None)
    settings = live.settings
    if args.epochs_of == "full":
        settings = replace(settings, batch_size=256)
    if args.batches or args.quick:
        settings = replace(settings, train_batches=1 if args.quick else args.batches)
    live.settings = settings
    images = settings.batch_size * (settings.train_batches or 1)
    print(machine_line().split(" driver:")[0] + f" torch threads {torch.get_num_threads()}")
    print(f"{args.dataset} ({live.shape.image_size}x{live.shape.image_size}, "
          f"{live.shape.num_classes} classes), C=16 N=5, digits; batches of "
          f"{settings.batch_size}, {settings.train_batches} an epoch, {repeat} timed epochs")
    ratios = []
    for cell in cells:
        arch = index_to_arch(cell)
        ours, theirs = time_epochs([
            lambda: live.trainer_for(arch),
            lambda: reference_trainer(live.trainer_for(arch), arch, live.shape.num_classes),
        ], repeat)
        (rate, line), (ref_rate, ref_line) = summary(ours, images), summary(theirs, images)
        print(f"cell {cell:5d} ours:   {line}")
        print(f"cell {cell:5d} xautodl: {ref_line}")
        ratios.append(rate / ref_rate)
    ratio = statistics.median(ratios)
    print_ratio("nas201_training (our training images/s over xautodl's, same loop)", ratio,
                ">= 0.9", ratio >= 0.9)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
