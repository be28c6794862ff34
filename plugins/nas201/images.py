"""Images for live NAS-Bench-201 training: the benchmark's own files, sklearn's digits, synthetic.

The benchmark data set (``cifar10-valid``, ``cifar10``, ``cifar100``, ``ImageNet16-120``) fixes the
classes, the input side, the normalisation, the augmentation and the splits; the *source* says
where the pixels come from:

* ``files``: the data set's usual files under a data directory (NAS-Bench-201's layout, its
  ``$TORCH_HOME/cifar.python``): ``cifar-10-batches-py/`` (CIFAR python pickles),
  ``cifar-100-python/``, ``ImageNet16/`` (the downsampled-ImageNet pickle batches
  ``train_data_batch_1..10`` and ``val_data``, labels 1..1000, of which 1..120 are kept);
* ``digits``: scikit-learn's 1,797 digits (8x8, ships offline), resized to the input side and
  copied to 3 channels, split 80/20 (stratified, fixed);
* ``synthetic``: random pixels and labels of the benchmark's shape, for speed runs.

Splits, as NAS-Bench-201: ``cifar10-valid`` trains on 25k of CIFAR-10's training set and evaluates
on the other 25k (``x-valid``); ``cifar10`` trains on all 50k and evaluates on the test set
(``ori-test``); ``cifar100`` and ``ImageNet16-120`` train on the training set and evaluate on
``x-valid``, half of the test set. The index files ship in ``plugins/nas201/splits/`` (MIT, from
the reference repository); a file of the same name in the data directory takes precedence.

Images stay ``uint8`` (N, 3, H, W) until a batch is formed, so CIFAR fits on a GPU (150 MB).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from driver.errors import ConfigError, DataError
from plugins.nas201.costs import shape_of
from plugins.nas201.schedule import check_source

SPLITS_DIR = Path(__file__).resolve().parent / "splits"


@dataclass(frozen=True)
class DatasetRecipe:
    """How NAS-Bench-201 trains and evaluates on one benchmark data set."""

    folder: str  # under the data directory
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_padding: int  # RandomCrop(side, padding) after a random horizontal flip
    eval_split: str  # the official name of the split evaluated
    split_file: str | None = None  # index file, in SPLITS_DIR
    train_key: str | None = None  # key of the training indices in split_file (None: all)
    eval_key: str | None = None


def _per_255(*values: float) -> tuple[float, float, float]:
    a, b, c = (v / 255 for v in values)
    return a, b, c


_CIFAR10_MEAN, _CIFAR10_STD = _per_255(125.3, 123.0, 113.9), _per_255(63.0, 62.1, 66.7)
RECIPES: dict[str, DatasetRecipe] = {
    "cifar10-valid": DatasetRecipe("cifar-10-batches-py", _CIFAR10_MEAN, _CIFAR10_STD, 4,
                                   "x-valid", "cifar-split.txt", "train", "valid"),
    "cifar10": DatasetRecipe("cifar-10-batches-py", _CIFAR10_MEAN, _CIFAR10_STD, 4, "ori-test"),
    "cifar100": DatasetRecipe("cifar-100-python", _per_255(129.3, 124.1, 112.4),
                              _per_255(68.2, 65.4, 70.4), 4, "x-valid",
                              "cifar100-test-split.txt", None, "xvalid"),
    "ImageNet16-120": DatasetRecipe("ImageNet16", _per_255(122.68, 116.66, 104.01),
                                    _per_255(63.22, 61.26, 65.09), 2, "x-valid",
                                    "imagenet-16-120-test-split.txt", None, "xvalid"),
}


@dataclass(frozen=True)
class BenchmarkImages:
    """Training and evaluation images (uint8, N x 3 x S x S) with int64 labels, and how to
    normalise and augment them."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    eval_split: str
    description: dict[str, Any] = field(default_factory=dict)


def load_images(dataset: str, source: str, data_dir: str | Path | None = None, *, seed: int = 0,
                synthetic_images: tuple[int, int] = (1024, 256)) -> BenchmarkImages:
    """The images of benchmark *dataset* from *source*; *synthetic_images* = (train, eval)."""
    shape = shape_of(dataset)  # DataError for an unknown data set
    check_source(source)
    recipe = RECIPES[dataset]
    if source == "digits":
        return digits_images(shape.image_size, recipe)
    if source == "synthetic":
        return synthetic(shape.image_size, shape.num_classes, recipe, seed, *synthetic_images)
    if data_dir is None:
        raise ConfigError(f"data source 'files' needs a data directory holding {recipe.folder}/")
    return _from_files(dataset, recipe, Path(data_dir).expanduser())


def _from_files(dataset: str, recipe: DatasetRecipe, data_dir: Path) -> BenchmarkImages:
    folder = data_dir / recipe.folder
    if not folder.is_dir():
        raise DataError(f"{dataset}: no folder {str(folder)!r}; the data directory must hold "
                        f"{recipe.folder}/ ({_FORMATS[recipe.folder]}), or use data=digits")
    train, test = _READERS[recipe.folder](folder)
    described: dict[str, Any] = {"source": "files", "folder": str(folder)}
    if recipe.split_file is None:
        return _images(train, test, recipe, described)
    split_path = data_dir / recipe.split_file
    if not split_path.is_file():
        split_path = SPLITS_DIR / recipe.split_file
    indices = read_split(split_path)
    described["split_file"] = str(split_path)
    if dataset == "cifar10-valid":  # both halves come from the training set
        test = _take(train, indices, recipe.eval_key, split_path)
        train = _take(train, indices, recipe.train_key, split_path)
    else:
        test = _take(test, indices, recipe.eval_key, split_path)
    return _images(train, test, recipe, described)


Arrays = tuple[np.ndarray, np.ndarray]  # uint8 (N, 3, S, S), int64 (N,)


def _images(train: Arrays, test: Arrays, recipe: DatasetRecipe,
            described: dict[str, Any]) -> BenchmarkImages:
    described.update(train_images=len(train[1]), eval_images=len(test[1]))
    train_x, train_y, eval_x, eval_y = (torch.from_numpy(np.ascontiguousarray(a))
                                        for a in (*train, *test))
    return BenchmarkImages(train_x, train_y, eval_x, eval_y, recipe.mean, recipe.std,
                           recipe.crop_padding, recipe.eval_split, described)


def read_split(path: Path) -> dict[str, list[int]]:
    """A NAS-Bench-201 split file: ``{"KEY": ["int", ["0", "5", ...]], ...}`` -> ``{KEY: ints}``."""
    try:
        raw = json.loads(path.read_text())
        return {key: [int(i) for i in values] for key, (_kind, values) in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{str(path)!r} is not a NAS-Bench-201 split file: {exc}") from None


def _take(arrays: Arrays, splits: dict[str, list[int]], key: str | None, path: Path) -> Arrays:
    if key not in splits:
        raise DataError(f"split file {str(path)!r} has no key {key!r} (it has {sorted(splits)})")
    index = np.asarray(splits[key], dtype=np.int64)
    if len(index) and (index.min() < 0 or index.max() >= len(arrays[1])):
        raise DataError(f"split {key!r} of {str(path)!r} indexes up to {int(index.max())}, but the "
                        f"data has {len(arrays[1])} images: files and split file do not match")
    return arrays[0][index], arrays[1][index]


def _unpickle(path: Path, label_key: str) -> Arrays:
    """One pickled batch: ``data`` (N x 3*S*S uint8) and labels under *label_key*."""
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data, labels = np.asarray(batch["data"], dtype=np.uint8), batch[label_key]
    except FileNotFoundError:
        raise DataError(f"missing data file {str(path)!r}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, KeyError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not a pickled image batch with 'data' and "
                        f"{label_key!r}: {exc!r}") from None
    side = int(round((data.shape[1] // 3) ** 0.5))
    return data.reshape(-1, 3, side, side), np.asarray(labels, dtype=np.int64)


def _concat(parts: list[Arrays]) -> Arrays:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_cifar10(folder: Path) -> tuple[Arrays, Arrays]:
    train = _concat([_unpickle(folder / f"data_batch_{i}", "labels") for i in range(1, 6)])
    return train, _unpickle(folder / "test_batch", "labels")


def _read_cifar100(folder: Path) -> tuple[Arrays, Arrays]:
    return _unpickle(folder / "train", "fine_labels"), _unpickle(folder / "test", "fine_labels")


def _read_imagenet16_120(folder: Path) -> tuple[Arrays, Arrays]:
    train = _concat([_unpickle(folder / f"train_data_batch_{i}", "labels") for i in range(1, 11)])
    return _first_120_classes(train), _first_120_classes(_unpickle(folder / "val_data", "labels"))


def _first_120_classes(arrays: Arrays) -> Arrays:
    """Keep labels 1..120 (in file order) and number them from 0, as ImageNet16-120 does."""
    x, y = arrays
    keep = (y >= 1) & (y <= 120)
    return x[keep], y[keep] - 1


_READERS = {"cifar-10-batches-py": _read_cifar10, "cifar-100-python": _read_cifar100,
            "ImageNet16": _read_imagenet16_120}
_FORMATS = {
    "cifar-10-batches-py": "data_batch_1..5 and test_batch from cifar-10-python.tar.gz",
    "cifar-100-python": "train and test from cifar-100-python.tar.gz",
    "ImageNet16": "train_data_batch_1..10 and val_data of the 16x16 downsampled ImageNet",
}


def digits_images(image_size: int, recipe: DatasetRecipe) -> BenchmarkImages:
    """scikit-learn's digits as uint8 RGB at *image_size*, a fixed stratified 80/20 split,
    normalised by their own training mean and std; *recipe* gives the augmentation."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) * (255 / 16)).unsqueeze(1)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(digits.target.astype(np.int64))
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=digits.target,
                                   random_state=0)
    t, v = torch.from_numpy(train), torch.from_numpy(test)
    pixels = x[t].float() / 255
    mean, std = float(pixels.mean()), float(pixels.std())
    described = {"source": "digits", "train_images": len(t), "eval_images": len(v)}
    return BenchmarkImages(x[t], y[t], x[v], y[v], (mean,) * 3, (std,) * 3, recipe.crop_padding,
                           "digits-valid", described)


def synthetic(image_size: int, num_classes: int, recipe: DatasetRecipe, seed: int,
              train_images: int, eval_images: int) -> BenchmarkImages:
    """Uniform random pixels and labels (accuracy stays at chance): throughput runs only."""
    gen = torch.Generator().manual_seed(seed)
    n = train_images + eval_images
    x = torch.randint(0, 256, (n, 3, image_size, image_size), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, num_classes, (n,), generator=gen)
    described = {"source": "synthetic", "train_images": train_images, "eval_images": eval_images}
    return BenchmarkImages(x[:train_images], y[:train_images], x[train_images:],
                           y[train_images:], recipe.mean, recipe.std, recipe.crop_padding,
                           "synthetic", described)


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per image: a random horizontal flip and a random crop of the original size from a copy
    zero-padded by *pad* pixels (torchvision's RandomHorizontalFlip + RandomCrop), vectorised.

    Runs where *x* is; *gen* must be a generator of that device (no host-device copies).
    """
    n, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=dev)
    ox = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen, device=dev)
    flip = torch.rand(n, 1, generator=gen, device=dev) < 0.5
    rows = oy + torch.arange(h, device=dev)
    cols = ox + torch.arange(w, device=dev)
    cols = torch.where(flip, cols.flip(1), cols)
    # Advanced indices around a slice put their broadcast dims first: result is (N, H, W, C).
    batch = torch.arange(n, device=dev)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()
