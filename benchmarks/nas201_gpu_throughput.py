"""Training images/s of a full-size NAS-Bench-201 cell at batch 256 on synthetic data, on a GPU.

    python benchmarks/nas201_gpu_throughput.py                 # cuda, cell 6111, 32x32, batch 256
    python benchmarks/nas201_gpu_throughput.py --dataset ImageNet16-120 --cell 11
    python benchmarks/nas201_gpu_throughput.py --device cpu --batch-size 8 --steps 2   # dry run

The full setting's training step (the benchmark's network, C=16, N=5; SGD with Nesterov momentum
and weight decay; random crop and flip on the device) through ``Trainer.train_epoch`` on random
uint8 images of the data set's shape, after a warm-up epoch; cuDNN autotuning on (not the
deterministic kernels). The reference in the same run: the same loop with xautodl 1.0.0's
``TinyNetwork`` (``pip install --no-deps xautodl==1.0.0``), interleaved. Prints images/s of
training and of evaluation (forward only), the peak GPU memory, and::

    RATIO nas201_gpu_throughput (our training images/s over xautodl's, same loop) = ...x

Without a visible CUDA device it says so and exits with status 2 (``--device cpu`` for a dry run
of the script itself).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository

import torch  # noqa: E402

from _common import machine_line, print_ratio  # noqa: E402  (beside this script)
from nas201_training import (  # noqa: E402  (beside this script)
    REFERENCE_INSTALL, ReferenceLogits, reference_trainer, time_epochs,
)
from plugins.nas201.images import load_images  # noqa: E402
from plugins.nas201.live import LiveEvaluator, on_device  # noqa: E402
from plugins.nas201.schedule import settings_for  # noqa: E402
from plugins.nas201.space import index_to_arch  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dataset", default="cifar10", help="fixes the input size and classes")
    parser.add_argument("--cell", type=int, default=6111, help="official index")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed training steps an epoch")
    parser.add_argument("--repeat", type=int, default=3, help="timed epochs per side")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Time both sides, print the lines and the ratio."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device is visible: run this on a GPU machine (or --device cpu for a dry "
              "run)", file=sys.stderr)
        return 2
    try:
        ReferenceLogits(index_to_arch(0), 10)
    except ImportError:
        print(f"the reference implementation is missing: {REFERENCE_INSTALL}", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    images = args.batch_size * args.steps
    live = LiveEvaluator(dataset=args.dataset, mode="full", data="synthetic", device=args.device,
                         log=lambda line: None)
    # synthetic images: one epoch of `steps` full batches, one batch to evaluate
    live.images = on_device(load_images(args.dataset, "synthetic",
                                        synthetic_images=(images, args.batch_size)), live.device)
    live.settings = replace(settings_for("full"), batch_size=args.batch_size,
                            train_batches=args.steps)
    arch = index_to_arch(args.cell)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ours, theirs = time_epochs([
        lambda: live.trainer_for(arch),
        lambda: reference_trainer(live.trainer_for(arch), arch, live.shape.num_classes),
    ], args.repeat)
    print(machine_line().split(" driver:")[0] + f" device {_device_name(device)}")
    print(f"{args.dataset} ({live.shape.image_size}x{live.shape.image_size}), cell {args.cell} "
          f"{arch}, C=16 N=5, batch {args.batch_size}, {args.steps} steps an epoch, "
          f"{args.repeat} timed epochs")
    rates = {}
    for name, results in (("ours", ours), ("xautodl", theirs)):
        train_s = statistics.median(r.train_time_s for r in results)
        eval_s = statistics.median(r.eval_time_s for r in results)
        rates[name] = images / train_s
        print(f"{name:8s} training {rates[name]:10.1f} images/s ({train_s:.3f} s/epoch), "
              f"evaluation {args.batch_size / eval_s:10.1f} images/s")
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"peak GPU memory allocated (both sides): {peak:.0f} MiB")
    ratio = rates["ours"] / rates["xautodl"]
    print_ratio("nas201_gpu_throughput (our training images/s over xautodl's, same loop)", ratio,
                ">= 0.9", ratio >= 0.9)
    return 0


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


if __name__ == "__main__":
    raise SystemExit(main())
