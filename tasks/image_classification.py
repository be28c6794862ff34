"""PyTorch image-classification benchmark that logs in the MXNet/Gluon format old patterns expect.

Lines printed to stdout (rank 0 only, flushed), floats as Python ``repr`` so that
``float(scraped_text)`` gives back exactly the logged value::

    Epoch[E] Batch [B]\tSpeed: X samples/sec\taccuracy=A   every --log-interval batches and at
                                                           the last batch of an epoch; B is the
                                                           0-based batch index, X global samples/s
                                                           over the batches since the last line,
                                                           A the epoch's running training accuracy
    [Epoch E] training: accuracy=A
    [Epoch E] training: loss=L
    [Epoch E] time cost: T        seconds of training in the epoch (validation excluded)
    [Epoch E] validation: accuracy=A
    total time cost: T            seconds from the first epoch to the end, validation included

Processes: ``--num-gpus 0`` trains on the CPU (``--num-procs P`` > 1 runs P gloo processes),
``--num-gpus 1`` on cuda:0, ``--num-gpus N`` > 1 runs DistributedDataParallel over N NCCL
processes. For more than one process the script re-executes itself under
``python -m torch.distributed.run --standalone`` (or is started by ``torchrun`` directly).
``--batch-size`` is per process; the global batch is ``batch_size * processes``.

Reproducibility: ``--seed`` fixes the weights, the data order and the augmentation; on the CPU
deterministic algorithms are on by default, so one seed gives the same accuracies and losses run
after run (``--no-deterministic`` to turn them off; on GPUs they are off unless
``--deterministic``, as they cost speed). ``--warmup-batches W`` leaves the first W batches of
the first epoch out of Speed (not out of time cost): compilation and autotuning happen there.

Example (the digits_mlp task)::

    python tasks/image_classification.py --model mlp --dataset digits --epochs 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence, cast

if __package__ in (None, ""):
    # Run as a script: import tasks.* from the repository root, and keep tasks/ itself off
    # sys.path so that tasks/datasets.py cannot shadow a top-level package named "datasets".
    _ROOT = str(Path(__file__).resolve().parent.parent)
    sys.path[0] = _ROOT

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from tasks.datasets import (
    DATASET_NAMES, ImageData, TaskError, load_dataset, normaliser, random_crop_flip, to_float,
)
from tasks.models import MODEL_NAMES, build_model
from tasks.runlog import RunLog


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring for the log format)."""
    p = argparse.ArgumentParser(prog="image_classification.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=MODEL_NAMES, default="mlp")
    p.add_argument("--dataset", choices=DATASET_NAMES, default="digits")
    p.add_argument("--data-dir", help="CIFAR-10 python batches (data_batch_1..5, test_batch)")
    p.add_argument("--image-size", type=int,
                   help="synthetic image side / digits resize (default: native size)")
    p.add_argument("--num-classes", type=int, default=10, help="synthetic only")
    p.add_argument("--channels", type=int, default=3, help="synthetic only")
    p.add_argument("--synthetic-samples", type=int, default=10_000,
                   help="synthetic training images (validation gets a fifth of this)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--batches-per-epoch", type=int, default=0,
                   help="cap on training (and validation) batches per epoch; 0 = no cap")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=5e-4, help="weight decay")
    p.add_argument("--log-interval", type=int, default=10, help="batches between Speed lines")
    p.add_argument("--warmup-batches", type=int, default=0,
                   help="first-epoch batches left out of Speed (compilation, autotuning)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-gpus", type=int, default=0, help="0 = CPU; N > 1 = DDP over N GPUs")
    # Not "--nproc": torchrun's argparse would take it for an abbreviation of its own option.
    p.add_argument("--num-procs", type=int, default=1,
                   help="CPU processes (gloo DDP) when --num-gpus 0")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = default")
    p.add_argument("--compile", action="store_true", help="train through torch.compile")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="deterministic algorithms (default: on for CPU, off for GPU)")
    p.add_argument("--summary-json", help="also write every logged value to this JSON file")
    args = p.parse_args(argv)
    _check_args(p, args)
    return args


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject values that could only fail later, with argparse's usage message (exit 2)."""
    positive = ("epochs", "batch_size", "log_interval", "num_procs", "num_classes", "channels",
                "synthetic_samples")
    for name in positive:
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)!r}")
    for name in ("batches_per_epoch", "warmup_batches", "num_gpus", "threads"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)!r}")
    if args.image_size is not None and args.image_size < 1:
        p.error(f"--image-size must be >= 1, got {args.image_size!r}")
    if args.num_gpus > 0 and args.num_procs != 1:
        p.error("--num-procs is for CPU runs; with --num-gpus N the script runs N processes")


def processes_wanted(args: argparse.Namespace) -> int:
    """How many training processes the options ask for."""
    return args.num_gpus if args.num_gpus > 0 else args.num_procs


def check_gpus(args: argparse.Namespace) -> None:
    """Fail early, with the numbers, when the GPUs asked for are not there."""
    if args.num_gpus == 0:
        return
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found < args.num_gpus:
        raise TaskError(
            f"--num-gpus {args.num_gpus} but {found} CUDA device(s) visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
            f"use --num-gpus 0 for CPU"
        )


def relaunch_under_torchrun(nproc: int, argv: Sequence[str]) -> None:
    """Replace this process by torch.distributed.run starting *nproc* copies of this script.

    ``exec`` keeps one process id for the caller, so a driver's signals reach torchrun, which
    forwards them to the workers. ``--standalone`` picks a free port for the rendezvous.
    """
    # --log-dir: without one torchrun makes /tmp/torchelastic_* for per-rank reply files and
    # never removes it; our workers write their output to the driver's log and no reply file.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", f"--log-dir={os.devnull}",
           str(Path(__file__).resolve()), *argv]
    sys.stdout.flush()
    os.execv(sys.executable, cmd)


def init_runtime(args: argparse.Namespace) -> tuple[int, int, torch.device]:
    """Join the process group when there is one; return (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != processes_wanted(args):
        raise TaskError(f"started with WORLD_SIZE={world} but the options ask for "
                        f"{processes_wanted(args)} process(es) (--num-gpus/--num-procs)")
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if args.num_gpus > 0 else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def make_reproducible(args: argparse.Namespace, device: torch.device) -> None:
    """Seed every generator; use deterministic kernels unless told otherwise (GPU default off)."""
    deterministic = args.deterministic if args.deterministic is not None else device.type == "cpu"
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by cuBLAS
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)


def stream_seed(seed: int, *stream: int) -> int:
    """An independent 63-bit seed for the named sub-stream of *seed* (NumPy SeedSequence)."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1, np.uint64)[0] >> 1)


def global_sums(values: torch.Tensor, world: int) -> list[float]:
    """Sum a small float64 tensor over all processes; returns Python floats (syncs the device)."""
    values = values.clone()
    if world > 1:
        dist.all_reduce(values)
    return [float(v) for v in values.tolist()]


def sync(device: torch.device) -> None:
    """Wait for queued device work so that wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """One model, optimiser and dataset; trains epochs and evaluates, logging through RunLog."""

    def __init__(self, args: argparse.Namespace, data: ImageData, rank: int, world: int,
                 device: torch.device, log: RunLog) -> None:
        self.args, self.data, self.rank, self.world, self.device, self.log = (
            args, data, rank, world, device, log)
        self.model = build_model(args.model, data.channels, data.image_size, data.num_classes)
        self.model.to(device)
        train_model: nn.Module = self.model
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if args.compile:  # an OptimizedModule for a module, though typed as a callable
            train_model = cast(nn.Module, torch.compile(train_model))
        self.train_model = train_model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=args.lr,
                                         momentum=args.momentum, weight_decay=args.wd)
        self.criterion = nn.CrossEntropyLoss()
        # The whole dataset lives on the device (CIFAR-10 is 180 MB as uint8): batches are made
        # by indexing there, without a host-to-device copy (and its stream sync) per batch.
        self.train_x, self.train_y, self.val_x, self.val_y = (
            t.to(device) for t in (data.train_x, data.train_y, data.val_x, data.val_y))
        self.mean, self.std = normaliser(data, device)
        # Same order on every rank (each takes its own slice); augmentation differs per rank.
        self.order_gen = torch.Generator().manual_seed(stream_seed(args.seed, 1))
        self.augment_gen = torch.Generator(device).manual_seed(stream_seed(args.seed, 2, rank))
        self.global_batch = args.batch_size * world
        self.batches = len(data.train_y) // self.global_batch  # the last partial batch is dropped
        if args.batches_per_epoch:
            self.batches = min(self.batches, args.batches_per_epoch)
        if self.batches == 0:
            raise TaskError(f"{len(data.train_y)} training images cannot fill one global batch of "
                            f"{self.global_batch} (--batch-size x processes); lower --batch-size")

    def _batch(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Augment (training, CIFAR only) and normalise a batch of device images."""
        if train and self.data.augment:
            x = random_crop_flip(x, self.augment_gen)
        return to_float(x, self.mean, self.std)

    def _train_step(self, idx: torch.Tensor, stats: torch.Tensor) -> None:
        """One SGD step on training images *idx*; adds (correct, seen, loss sum) to *stats*."""
        x, y = self._batch(self.train_x[idx], train=True), self.train_y[idx]
        out = self.train_model(x)
        loss = self.criterion(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        stats[0] += (out.argmax(1) == y).sum()
        stats[1] += len(y)
        stats[2] += loss.detach() * len(y)

    def train_epoch(self, epoch: int) -> None:
        """Train one epoch; log Speed lines, then training accuracy, loss and time cost."""
        self.train_model.train()
        bs, n = self.args.batch_size, self.batches
        order = torch.randperm(len(self.train_y), generator=self.order_gen).to(self.device)
        stats = torch.zeros(3, dtype=torch.float64, device=self.device)  # correct, seen, loss sum
        warmup = self.args.warmup_batches if epoch == 0 else 0
        start = tic = time.perf_counter()
        timed = 0
        for i in range(n):
            self._train_step(order[i * self.global_batch + self.rank * bs:][:bs], stats)
            if i < warmup:
                if i == warmup - 1:
                    sync(self.device)
                    tic = time.perf_counter()
                continue
            timed += self.global_batch
            if (i + 1) % self.args.log_interval == 0 or i == n - 1:
                correct, seen, _ = global_sums(stats, self.world)
                now = time.perf_counter()
                self.log.batch(epoch, i, timed, now - tic, correct / seen)
                tic, timed = now, 0
        correct, seen, loss_sum = global_sums(stats, self.world)
        sync(self.device)
        self.log.epoch_training(epoch, correct / seen, loss_sum / seen, time.perf_counter() - start)

    @torch.no_grad()
    def validate(self, epoch: int) -> None:
        """Accuracy of the plain (uncompiled) model over the validation set, sharded by rank.

        With --batches-per-epoch, at most that many global batches of validation images.
        """
        self.model.eval()
        n = len(self.data.val_y)
        if self.args.batches_per_epoch:
            n = min(n, self.args.batches_per_epoch * self.global_batch)
        stats = torch.zeros(2, dtype=torch.float64, device=self.device)
        shard = torch.arange(n, device=self.device)[self.rank::self.world]
        for idx in shard.split(self.args.batch_size):
            x, y = self._batch(self.val_x[idx], train=False), self.val_y[idx]
            stats[0] += (self.model(x).argmax(1) == y).sum()
            stats[1] += len(y)
        correct, seen = global_sums(stats, self.world)
        self.log.epoch_validation(epoch, correct / seen)


def run(args: argparse.Namespace, rank: int, world: int, device: torch.device) -> None:
    """Load the data, build the trainer and run every epoch."""
    log = RunLog(enabled=rank == 0)
    data = load_dataset(  # first: a missing file fails before anything slow
        args.dataset, data_dir=args.data_dir, image_size=args.image_size,
        num_classes=args.num_classes, channels=args.channels,
        synthetic_samples=args.synthetic_samples, seed=args.seed,
    )
    make_reproducible(args, device)
    trainer = Trainer(args, data, rank, world, device, log)
    log.header(_describe(args, data, world, device, trainer.batches))
    start = time.perf_counter()
    for epoch in range(args.epochs):
        trainer.train_epoch(epoch)
        trainer.validate(epoch)
    log.total(time.perf_counter() - start)
    if args.summary_json and rank == 0:
        log.write_json(args.summary_json, _describe(args, data, world, device, trainer.batches))


def _describe(args: argparse.Namespace, data: ImageData, world: int, device: torch.device,
              batches: int) -> dict[str, Any]:
    """What ran, for the log header and the summary file."""
    return {
        "options": vars(args), "world_size": world, "device": str(device),
        "global_batch_size": args.batch_size * world, "batches_per_epoch": batches,
        "train_images": len(data.train_y), "val_images": len(data.val_y),
        "image_shape": list(data.train_x.shape[1:]), "torch": torch.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad inputs, with a one-line message)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        check_gpus(args)
        if processes_wanted(args) > 1 and "WORLD_SIZE" not in os.environ:
            relaunch_under_torchrun(processes_wanted(args), argv)
        rank, world, device = init_runtime(args)
        try:
            run(args, rank, world, device)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    except TaskError as exc:
        print(f"image_classification.py: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
