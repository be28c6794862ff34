"""Train one NAS-Bench-201 cell live, with the benchmark's schedule, logging one line per epoch.

    python tasks/nas201_train.py --arch 6111 --dataset cifar10-valid --mode toy
    python tasks/nas201_train.py --arch '|nor_conv_3x3~0|+|...|' --mode full --data-dir DIR

``--arch`` is an arch string or an official index. ``--mode toy`` (default) trains a few batches
of scikit-learn digits at the benchmark's input size (on the GPU if there is one, else the CPU);
``--mode full`` the paper's setting (200 epochs, or ``--epochs 12``) on the data set's files under
``--data-dir`` (NAS-Bench-201's ``cifar.python`` folder), meant for a GPU. ``--data`` overrides
the source (``digits``, ``synthetic`` for speed runs, ``files``). ``--threads`` fixes torch's CPU
threads (results depend on their number). Output (floats as ``repr``: they read back exactly)::

    config: {"arch": ..., "mode": "toy", ...}
    params_mb=0.129306
    flops_m=15.64737
    epoch=1/2 lr=0.1 train_loss=2.31 train_accuracy=12.5 eval_loss=2.29 eval_accuracy=10.9 \\
        train_time_s=2.1 eval_time_s=0.4
    final: valid_accuracy=10.9
    final: training_time_s=4.3

``params_mb`` and ``flops_m`` are the built network's own counts (millions). Exit codes: 0 done,
2 usage error, 3 configuration or data error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from driver.errors import ConfigError  # noqa: E402
from plugins.nas201.costs import BENCHMARK_SHAPES, shape_of  # noqa: E402
from plugins.nas201.schedule import (  # noqa: E402
    MODES, NB201_SEEDS, SOURCES, check_source, settings_for,
)
from plugins.nas201.space import arch_to_index, index_to_arch  # noqa: E402
from tasks._entry import guarded  # noqa: E402

BEST_CIFAR10_VALID = 6111  # the most accurate cell of cifar10-valid (91.61%)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", default=str(BEST_CIFAR10_VALID), help="arch string or index")
    parser.add_argument("--dataset", default="cifar10-valid", help=", ".join(BENCHMARK_SHAPES))
    parser.add_argument("--mode", default="toy", help=" or ".join(MODES))
    parser.add_argument("--data", default="auto",
                        help=f"auto (toy: digits, full: files), {', '.join(SOURCES)}")
    parser.add_argument("--data-dir", help="files: the folder holding cifar-10-batches-py/ etc.")
    parser.add_argument("--epochs", type=int, default=0,
                        help="the schedule's length (0: toy 2, full 200; the paper: 12 or 200)")
    parser.add_argument("--stop-epoch", type=int, help="stop after this epoch of the schedule")
    parser.add_argument("--seed", type=int, default=NB201_SEEDS[0], help="777, 888, 999 in NB201")
    parser.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:1")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = default")
    parser.add_argument("--channels", type=int, default=16, help="C (the benchmark's 16)")
    parser.add_argument("--cells-per-stage", type=int, default=5, help="N (the benchmark's 5)")
    return parser.parse_args(argv)


def resolve_arch(text: str) -> str:
    """An arch string, or the arch at official index *text*; ConfigError otherwise."""
    if text.strip().isdigit():
        try:
            return index_to_arch(int(text))
        except IndexError as exc:
            raise ConfigError(f"--arch {text}: {exc}") from None
    if arch_to_index(text) < 0:
        raise ConfigError(f"--arch {text!r} is neither an index (0..15624) nor a NAS-Bench-201 "
                          f"arch string such as {index_to_arch(BEST_CIFAR10_VALID)!r}")
    return text


def run(args: argparse.Namespace) -> None:
    """Check everything, load the images, train, print the lines."""
    arch = resolve_arch(args.arch)
    if args.epochs < 0:
        raise ConfigError(f"--epochs {args.epochs}: expected 0 (the mode's default) or more")
    settings = settings_for(args.mode, args.epochs)  # checks the mode
    shape_of(args.dataset)
    source = None if args.data == "auto" else args.data
    if source is not None:
        check_source(source)
    if args.stop_epoch is not None and not 1 <= args.stop_epoch <= settings.epochs:
        raise ConfigError(f"--stop-epoch {args.stop_epoch}: must be in 1..{settings.epochs}")
    import torch  # after the checks: a typo costs no torch import

    from plugins.nas201.live import LiveEvaluator
    from plugins.nas201.network import count_flops, count_parameters

    if args.threads:
        torch.set_num_threads(args.threads)
    live = LiveEvaluator(None, args.dataset, args.mode, source, args.data_dir,
                         settings.epochs, args.seed, args.device, args.channels,
                         args.cells_per_stage)
    if live.device.type == "cpu":
        torch.use_deterministic_algorithms(True)  # epoch-by-epoch reproducible on a CPU
    trainer = live.trainer_for(arch)
    print("config: " + json.dumps(_describe(arch, args, live), sort_keys=True), flush=True)
    params_mb = count_parameters(trainer.model) / 1e6
    flops_m = count_flops(trainer.model, live.shape.image_size) / 1e6
    print(f"params_mb={params_mb!r}\nflops_m={flops_m!r}", flush=True)
    results = trainer.run(args.stop_epoch, lambda r: print(r.line(), flush=True))
    print(f"final: valid_accuracy={results[-1].eval_accuracy!r}")
    print(f"final: training_time_s={sum(r.train_time_s for r in results)!r}", flush=True)


def _describe(arch: str, args: argparse.Namespace, live: Any) -> dict[str, Any]:
    return {"arch": arch, "index": arch_to_index(arch), "dataset": args.dataset,
            "mode": args.mode, "seed": args.seed, "device": str(live.device),
            "eval_split": live.images.eval_split, "images": live.images.description,
            "settings": asdict(live.settings), "channels": args.channels,
            "cells_per_stage": args.cells_per_stage}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors become one message on stderr and the documented exit code."""
    args = parse_args(argv)
    return guarded("nas201_train", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
