"""In-memory image-classification data: CIFAR-10 (local pickles), scikit-learn digits, synthetic.

Every dataset is small enough to hold as tensors, so batches are made by indexing, which keeps the
data order a pure function of the seed. CIFAR-10 and synthetic images stay ``uint8`` until a batch
is formed (``to_float``), digits are stored already normalised as ``float32``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# One implementation, shared with the NAS-Bench-201 trainer (same augmentation, any padding).
from plugins.nas201.images import random_crop_flip  # noqa: F401  (re-exported)

DATASET_NAMES = ("cifar10", "digits", "synthetic")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_DIR_NAME = "cifar-10-batches-py"  # what cifar-10-python.tar.gz unpacks to
#: How to point a run at the data: the task's parameter first (these scripts run under
#: bench-driver, where the script's flags are the config's), then the script's own flags.
CIFAR10_FIX = ("With bench-driver: --set data_dir=DIR (relative to the task's folder), or "
               "--set dataset=synthetic for a run without data; running the script itself: "
               "--data-dir DIR or --dataset synthetic")


class TaskError(Exception):
    """A problem with the task's inputs, reported as one line and exit status 2."""


@dataclass(frozen=True)
class ImageData:
    """Train and validation images (N, C, H, W) with int64 labels, held in memory."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # random crop with 4-pixel padding and horizontal flip on training batches

    @property
    def channels(self) -> int:
        """Number of image channels."""
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        """Side of the square images in pixels."""
        return int(self.train_x.shape[2])


def load_dataset(
    name: str, *, data_dir: str | None, image_size: int | None, num_classes: int,
    channels: int, synthetic_samples: int, seed: int,
) -> ImageData:
    """Load dataset *name*; ``image_size`` None keeps the native size (digits are upsampled)."""
    if name == "cifar10":
        if data_dir is None:
            raise TaskError(f"the CIFAR-10 data directory is not set. {CIFAR10_FIX}")
        if image_size not in (None, 32):
            raise TaskError(f"--image-size {image_size} is not supported for cifar10 (32x32 only)")
        return load_cifar10(Path(data_dir).expanduser())
    if name == "digits":
        return load_digits(image_size or 8)
    if name == "synthetic":
        return make_synthetic(image_size or 32, num_classes, channels, synthetic_samples, seed)
    raise TaskError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def _unpickle(path: Path) -> dict[bytes, object]:
    """Read one CIFAR-10 python batch file (a pickled dict with byte-string keys)."""
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise TaskError(
            f"CIFAR-10 file not found: {str(path)!r}; the data directory must hold "
            f"data_batch_1..5 and test_batch (unpack cifar-10-python.tar.gz there). "
            f"{CIFAR10_FIX}"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise TaskError(f"{str(path)!r} is not a CIFAR-10 python batch (no b'data'/b'labels')")
    return batch


def _cifar_arrays(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate batch files into uint8 images (N, 3, 32, 32) and int64 labels."""
    batches = [_unpickle(p) for p in paths]
    data = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
    labels = np.concatenate([np.asarray(b[b"labels"], dtype=np.int64) for b in batches])
    return torch.from_numpy(data.reshape(-1, 3, 32, 32)), torch.from_numpy(labels)


def load_cifar10(data_dir: Path) -> ImageData:
    """CIFAR-10 python-pickle batches: 50,000 training images, the 10,000 test images validate."""
    if (data_dir / CIFAR10_DIR_NAME).is_dir():
        data_dir = data_dir / CIFAR10_DIR_NAME
    train_x, train_y = _cifar_arrays([data_dir / f"data_batch_{i}" for i in range(1, 6)])
    val_x, val_y = _cifar_arrays([data_dir / "test_batch"])
    return ImageData(train_x, train_y, val_x, val_y, 10, CIFAR10_MEAN, CIFAR10_STD, augment=True)


def load_digits(image_size: int) -> ImageData:
    """scikit-learn's 1,797 8x8 digits, one channel, with a fixed stratified 80/20 split.

    Pixels (0..16) are scaled to [0, 1] and bilinearly resized when ``image_size`` is not 8.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    y = torch.from_numpy(digits.target.astype(np.int64))
    idx_train, idx_val = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=digits.target, random_state=0
    )
    t, v = torch.from_numpy(idx_train), torch.from_numpy(idx_val)
    mean, std = float(x[t].mean()), float(x[t].std())  # training statistics only
    x = (x - mean) / std  # stored normalised, so mean/std below are the identity
    return ImageData(x[t], y[t], x[v], y[v], 10, (0.0,), (1.0,), augment=False)


def make_synthetic(
    image_size: int, num_classes: int, channels: int, samples: int, seed: int
) -> ImageData:
    """Random uint8 images and labels for pure-throughput runs (accuracy stays at chance)."""
    gen = torch.Generator().manual_seed(seed)
    n_val = max(samples // 5, 1)
    shape = (samples + n_val, channels, image_size, image_size)
    x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    y = torch.randint(0, num_classes, (samples + n_val,), generator=gen)
    mean, std = (0.5,) * channels, (0.289,) * channels  # of uniform [0, 1]
    return ImageData(x[:samples], y[:samples], x[samples:], y[samples:], num_classes, mean, std,
                     augment=False)


def normaliser(data: ImageData, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's per-channel mean and std as (1, C, 1, 1) tensors on *device*."""
    shape = (1, -1, 1, 1)
    mean = torch.tensor(data.mean, device=device).view(shape)
    return mean, torch.tensor(data.std, device=device).view(shape)


def to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Turn a uint8 batch into normalised float32; float batches (stored normalised) pass."""
    if x.dtype != torch.uint8:
        return x
    return (x.float().div_(255.0) - mean) / std
