"""Live NAS-Bench-201 training: the schedules and modes, the images in each real file format and
the official splits, the full-size network's training step, epoch-by-epoch reproducibility,
exact continuation, and the ``live`` evaluator."""

from __future__ import annotations

import io
import json
import math
import pickle
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from driver.errors import ConfigError, DataError
from driver.plugins import load_plugins
from driver.search import SearchBudget, Trial, run_search
from plugins.nas201 import costs
from plugins.nas201.images import RECIPES, SPLITS_DIR, load_images, random_crop_flip, read_split
from plugins.nas201.live import LiveEvaluator
from plugins.nas201.schedule import TrainingSettings, settings_for
from plugins.nas201.space import index_to_arch
from plugins.nas201.training import Trainer

ARCH = index_to_arch(11)  # convs, pools and a none edge
TIME = re.compile(r" (train|eval)_time_s=\S+")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine two spinning OpenMP threads run ~10x slower
    (and results depend on the thread count, so a fixed count is part of reproducibility)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- the schedules ------------------------------------------------------------------------------


def test_full_mode_is_the_benchmarks_schedule() -> None:
    """REFERENCE.md s5 / configs/nas-benchmark/hyper-opts/200E.config."""
    full = settings_for("full")
    assert (full.epochs, full.learning_rate, full.min_learning_rate, full.momentum,
            full.nesterov, full.weight_decay, full.batch_size, full.augment) == \
        (200, 0.1, 0.0, 0.9, True, 5e-4, 256, True)
    assert full.train_batches is None and full.eval_images is None  # the whole data
    assert settings_for("full", 12) == TrainingSettings(12)  # 12E differs only in epochs


def test_cosine_per_epoch_depends_only_on_the_epoch_and_the_schedule_length() -> None:
    twelve, two_hundred = settings_for("full", 12), settings_for("full")
    assert twelve.learning_rate_at(0) == two_hundred.learning_rate_at(0) == 0.1
    assert twelve.learning_rate_at(6) == pytest.approx(0.05)
    assert two_hundred.learning_rate_at(100) == pytest.approx(0.05)
    assert twelve.learning_rate_at(11) == pytest.approx(0.05 * (1 + math.cos(math.pi * 11 / 12)))
    rates = [twelve.learning_rate_at(e) for e in range(12)]
    assert rates == sorted(rates, reverse=True) and rates[-1] > 0  # never 0 while training


def test_toy_mode_is_small_and_keeps_the_optimiser() -> None:
    toy, full = settings_for("toy"), settings_for("full")
    assert (toy.epochs, toy.batch_size, toy.train_batches, toy.eval_images) == (2, 16, 4, 64)
    assert (toy.learning_rate, toy.momentum, toy.nesterov, toy.weight_decay, toy.augment) == \
        (full.learning_rate, full.momentum, full.nesterov, full.weight_decay, True)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: settings_for("ful"), r"mode='ful' \(did you mean 'full'\?\)"),
    (lambda: settings_for("toy", -3), "epochs=-3 must be an int >= 1"),
    (lambda: load_images("cifar10", "file"), r"'file' \(did you mean 'files'\?\)"),
    (lambda: load_images("cifar10", "files"), "needs a data directory"),
])
def test_bad_settings_are_config_errors(call: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_normalisation_augmentation_and_splits_per_dataset() -> None:
    """The reference's constants (xautodl get_datasets) and NAS-Bench-201's splits."""
    cifar10 = RECIPES["cifar10"]
    assert cifar10.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    assert cifar10.std == pytest.approx((63.0 / 255, 62.1 / 255, 66.7 / 255))
    assert RECIPES["cifar100"].mean == pytest.approx((129.3 / 255, 124.1 / 255, 112.4 / 255))
    assert RECIPES["ImageNet16-120"].std == pytest.approx((63.22 / 255, 61.26 / 255,
                                                           65.09 / 255))
    assert {k: r.crop_padding for k, r in RECIPES.items()} == {
        "cifar10-valid": 4, "cifar10": 4, "cifar100": 4, "ImageNet16-120": 2}
    assert {k: (r.eval_split, r.split_file, r.train_key, r.eval_key) for k, r in
            RECIPES.items()} == {
        "cifar10-valid": ("x-valid", "cifar-split.txt", "train", "valid"),
        "cifar10": ("ori-test", None, None, None),
        "cifar100": ("x-valid", "cifar100-test-split.txt", None, "xvalid"),
        "ImageNet16-120": ("x-valid", "imagenet-16-120-test-split.txt", None, "xvalid")}


@pytest.mark.parametrize(("name", "keys", "total", "first"), [
    ("cifar-split.txt", ("train", "valid"), 50_000,
     ([0, 5, 7, 11, 13, 15, 16, 17, 20, 24], [1, 2, 3, 4, 6, 8, 9, 10, 12, 14])),
    ("cifar100-test-split.txt", ("xvalid", "xtest"), 10_000,
     ([1, 3, 4, 5, 8, 10, 13, 14, 15, 16], [0, 2, 6, 7, 9, 11, 12, 17, 20, 24])),
    ("imagenet-16-120-test-split.txt", ("xvalid", "xtest"), 6_000,
     ([1, 2, 3, 6, 7, 8, 9, 12, 16, 18], [0, 4, 5, 10, 11, 13, 14, 15, 17, 20])),
])
def test_shipped_split_files_are_the_reference_halves(name: str, keys: tuple[str, str],
                                                      total: int, first: tuple[list[int], ...]
                                                      ) -> None:
    """Two disjoint halves covering the set; first indices as the reference code asserts."""
    split = read_split(SPLITS_DIR / name)
    a, b = (split[k] for k in keys)
    assert len(a) == len(b) == total // 2
    assert sorted(a + b) == list(range(total))
    assert (a[:10], b[:10]) == first
    assert (SPLITS_DIR / "LICENSE.md").read_text().startswith("MIT License")


# --- the images, in each real file format -------------------------------------------------------


def _images(n: int, side: int, start: int) -> np.ndarray:
    """*n* flat uint8 images whose first pixel is their global number (start, start + 1, ...)."""
    data = np.random.default_rng(start).integers(0, 256, (n, 3 * side * side), dtype=np.uint8)
    data[:, 0] = np.arange(start, start + n) % 256
    return data


def _dump(path: Path, batch: dict[Any, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _split(path: Path, **keys: list[int]) -> None:
    path.write_text(json.dumps({k: ["int", [str(i) for i in v]] for k, v in keys.items()}))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small files in each real format: CIFAR python pickles (bytes keys), ImageNet16's
    downsampled batches (str keys, labels 1..1000), and split files sized for them."""
    root = tmp_path_factory.mktemp("cifar.python")
    for i in range(1, 6):  # CIFAR-10: 5 x 4 training images, 6 test images
        _dump(root / "cifar-10-batches-py" / f"data_batch_{i}",
              {b"batch_label": b"x", b"data": _images(4, 32, 4 * (i - 1)),
               b"labels": [(4 * (i - 1) + k) % 10 for k in range(4)]})
    _dump(root / "cifar-10-batches-py" / "test_batch",
          {b"data": _images(6, 32, 100), b"labels": list(range(6))})
    for name, n, start in (("train", 12, 0), ("test", 8, 100)):
        _dump(root / "cifar-100-python" / name,
              {b"data": _images(n, 32, start), b"fine_labels": [k * 7 % 100 for k in range(n)],
               b"coarse_labels": [0] * n})
    for i in range(1, 11):  # labels 1..1000; only 1..120 belong to ImageNet16-120
        _dump(root / "ImageNet16" / f"train_data_batch_{i}",
              {"data": _images(3, 16, 3 * (i - 1)), "labels": [1, 120, 500 + i],
               "mean": np.zeros(768)})
    _dump(root / "ImageNet16" / "val_data",
          {"data": _images(8, 16, 100), "labels": [5, 121, 6, 7, 999, 8, 9, 10]})
    _split(root / "cifar-split.txt", train=[0, 2, 4, 6, 8, 10, 12, 14, 16, 18],
           valid=[1, 3, 5, 7, 9, 11])
    _split(root / "cifar100-test-split.txt", xvalid=[1, 3, 5, 7], xtest=[0, 2, 4, 6])
    _split(root / "imagenet-16-120-test-split.txt", xvalid=[0, 2, 4], xtest=[1, 3, 5])
    return root


def first_pixels(x: torch.Tensor) -> list[int]:
    return x[:, 0, 0, 0].tolist()


def test_cifar10_valid_trains_and_evaluates_on_the_two_halves_of_the_training_set(
        data_dir: Path) -> None:
    images = load_images("cifar10-valid", "files", data_dir)
    assert first_pixels(images.train_x) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert first_pixels(images.eval_x) == [1, 3, 5, 7, 9, 11]
    assert images.eval_y.tolist() == [1, 3, 5, 7, 9, 1]
    assert images.eval_split == "x-valid" and images.crop_padding == 4
    assert images.description["split_file"] == str(data_dir / "cifar-split.txt")


def test_cifar10_trains_on_all_and_evaluates_on_the_test_set(data_dir: Path) -> None:
    images = load_images("cifar10", "files", data_dir)
    assert first_pixels(images.train_x) == list(range(20))
    assert first_pixels(images.eval_x) == list(range(100, 106))
    assert images.train_x.dtype == torch.uint8 and images.train_x.shape == (20, 3, 32, 32)
    assert images.eval_split == "ori-test"


def test_cifar100_evaluates_on_x_valid_of_its_test_set(data_dir: Path) -> None:
    images = load_images("cifar100", "files", data_dir)
    assert len(images.train_y) == 12 and first_pixels(images.eval_x) == [101, 103, 105, 107]
    assert images.eval_y.tolist() == [7, 21, 35, 49]  # fine labels


def test_imagenet16_120_keeps_classes_1_to_120_numbered_from_0(data_dir: Path) -> None:
    images = load_images("ImageNet16-120", "files", data_dir)
    assert images.train_x.shape == (20, 3, 16, 16) and images.crop_padding == 2
    assert set(images.train_y.tolist()) == {0, 119}
    # val labels 5, 121, 6, 7, 999, 8, 9, 10 -> kept 5, 6, 7, 8, 9, 10; x-valid = kept[0, 2, 4]
    assert images.eval_y.tolist() == [4, 6, 8]
    assert first_pixels(images.eval_x) == [100, 103, 106]


def test_missing_and_broken_files_are_data_errors(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no folder .*cifar-100-python.* or use data=digits"):
        load_images("cifar100", "files", tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="missing data file .*data_batch_1"):
        load_images("cifar10", "files", tmp_path)
    for i in range(1, 6):
        (tmp_path / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="is not a pickled image batch"):
        load_images("cifar10", "files", tmp_path)
    # the shipped split indexes 50,000 images; these files hold 20
    link = tmp_path / "only-files"
    link.mkdir()
    (link / "cifar-10-batches-py").symlink_to(data_dir / "cifar-10-batches-py")
    with pytest.raises(DataError, match="indexes up to 49999, but the data has 20 images"):
        load_images("cifar10-valid", "files", link)


def test_digits_at_each_benchmarks_input_size() -> None:
    for dataset, side in (("cifar100", 32), ("ImageNet16-120", 16)):
        images = load_images(dataset, "digits")
        assert images.train_x.shape == (1437, 3, side, side) and len(images.eval_y) == 360
        assert images.train_x.dtype == torch.uint8 and int(images.train_x.max()) == 255
        assert torch.equal(images.train_x[:, 0], images.train_x[:, 2])  # grey as RGB
        pixels = images.train_x.float() / 255
        assert images.mean[0] == pytest.approx(float(pixels.mean()), rel=1e-4)


def test_random_crop_flip_takes_windows_of_the_zero_padded_image() -> None:
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flips = 0
    for image, source in zip(out, padded):
        windows = [source[:, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        plain = any(torch.equal(image, w) for w in windows)
        flipped = any(torch.equal(image, w.flip(2)) for w in windows)
        assert plain or flipped
        flips += flipped and not plain
    assert 16 < flips < 48  # about half


# --- training -----------------------------------------------------------------------------------


def test_full_mode_full_size_network_runs_one_training_step_on_the_cpu(data_dir: Path) -> None:
    """mode=full is the paper's setting; here on 20 CIFAR-10 images: one batch, one step. The
    evaluator's full mode trains the 12-epoch schedule (the paper's search reward)."""
    live = LiveEvaluator(dataset="cifar10", mode="full", data_dir=str(data_dir), device="cpu",
                         log=lambda line: None)
    assert live.settings == settings_for("full", 12) == TrainingSettings(12)
    assert live.images.description["train_images"] == 20
    trainer = live.trainer_for(ARCH)
    assert (trainer.model.stem[0].out_channels, len(trainer.model.blocks)) == (16, 17)
    group = trainer.optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, True, 5e-4)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    result = trainer.train_epoch()
    assert result.line().startswith("epoch=1/12 lr=0.1 ")
    assert math.isfinite(result.train_loss) and result.eval_accuracy >= 0
    changed = [not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters())]
    assert all(changed)  # one SGD step touched every parameter (weight decay included)
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1


def lines_of(live: LiveEvaluator, arch: str, fidelity: float | None = None) -> list[str]:
    lines: list[str] = []
    live.log = lines.append
    live.evaluate(Trial(0, arch, fidelity))
    return lines


@pytest.fixture(scope="module")
def toy_live() -> LiveEvaluator:
    """The toy mode on ImageNet16-120's input size (16x16: the cheapest full-size network)."""
    return LiveEvaluator(dataset="ImageNet16-120", device="cpu", seed=888)


def test_two_runs_give_identical_lines_but_time(toy_live: LiveEvaluator) -> None:
    first, second = lines_of(toy_live, ARCH), lines_of(toy_live, ARCH)
    assert len(first) == 2 and first[0].startswith("live: trial=0 epoch=1/2 lr=0.1 train_loss=")
    assert [TIME.sub("", line) for line in first] == [TIME.sub("", line) for line in second]
    other = LiveEvaluator(dataset="ImageNet16-120", device="cpu", seed=999)
    assert [TIME.sub("", x) for x in lines_of(other, ARCH)] != [TIME.sub("", x) for x in first]


def test_the_live_evaluator_reports_accuracy_real_time_and_the_network(
        toy_live: LiveEvaluator) -> None:
    lines: list[str] = []
    toy_live.log = lines.append
    result = toy_live.evaluate(Trial(5, ARCH, fidelity=1))
    info = result.info
    last = lines[-1]
    assert len(lines) == 1 and last.startswith("live: trial=5 epoch=1/2 ")
    assert result.value == float(re.search(r"eval_accuracy=(\S+)", last)[1])  # type: ignore[index]
    timed = sum(float(t) for t in re.findall(r"_time_s=(\S+)", last))
    assert result.cost_s >= timed > 0
    assert info["epochs_trained"] == 1 and info["schedule_epochs"] == 2
    assert info["params_mb"] == costs.params_mb(ARCH, "ImageNet16-120")
    assert info["flops_m"] == costs.flops_m(ARCH, "ImageNet16-120")
    assert info["valid_accuracy"] == result.value and info["eval_split"] == "digits-valid"
    assert toy_live.max_fidelity() == 2.0
    with pytest.raises(ValueError, match="not a NAS-Bench-201 arch string"):
        toy_live.evaluate(Trial(6, "|conv~0|"))


def test_live_is_registered_and_its_factory_checks_its_inputs() -> None:
    factory = load_plugins(autoload=False).registry("evaluators")["live"]
    with pytest.raises(ConfigError, match=r"'ful' \(did you mean 'full'\?\)"):
        factory(None, mode="ful")
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        factory(None, dataset="cifar")
    live = factory(None, dataset="cifar100", data="synthetic", device="cpu", epochs=3)
    assert isinstance(live, LiveEvaluator) and live.settings.epochs == 3
    assert live.images.eval_split == "synthetic" and live.shape.num_classes == 100


def test_unusable_devices_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="device='gpu'"):
        LiveEvaluator(dataset="ImageNet16-120", data="synthetic", device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device='cuda:1': no CUDA device is visible"):
            LiveEvaluator(dataset="ImageNet16-120", data="synthetic", device="cuda:1")


@pytest.mark.parametrize("name", ["random", "rea", "reinforce", "bohb", "local_search"])
def test_every_black_box_searcher_runs_against_the_live_evaluator(name: str) -> None:
    """Three trials of a tiny live network (C=4, N=1); BOHB asks for fewer epochs (fidelity)."""
    plugins = load_plugins(autoload=False)
    space = plugins.registry("search_spaces")["nb201"]()
    live = plugins.registry("evaluators")["live"](space, dataset="ImageNet16-120", device="cpu",
                                                  channels=4, cells_per_stage=1,
                                                  log=lambda line: None)
    searcher = plugins.registry("searchers")[name](space, seed=3)
    outcome = run_search(searcher, live, SearchBudget(max_evaluations=3))
    assert outcome.evaluations == 3 and outcome.time_s > 0  # real seconds
    assert outcome.best.info["epochs_trained"] in (1, 2) and 0 <= outcome.best.value <= 100


def test_bohbs_budgets_are_epochs_of_the_fixed_schedule() -> None:
    """Hyperband's low rung trains 1 epoch of the 2-epoch cosine, the promoted cells both."""
    plugins = load_plugins(autoload=False)
    space = plugins.registry("search_spaces")["nb201"]()
    lines: list[str] = []
    live = LiveEvaluator(space, dataset="ImageNet16-120", device="cpu", channels=4,
                         cells_per_stage=1, log=lines.append)
    run_search(plugins.registry("searchers")["bohb"](space, seed=3), live,
               SearchBudget(max_evaluations=5))
    last_epoch = {}
    for trial, epoch in re.findall(r"^live: trial=(\d+) epoch=(\d)/2 ", "\n".join(lines), re.M):
        last_epoch[trial] = int(epoch)
    assert sorted(last_epoch.values()) == [1, 1, 1, 2, 2]


def small_trainer(images: Any, seed: int = 1) -> Trainer:
    settings = TrainingSettings(3, batch_size=32, train_batches=3, eval_images=64)
    return Trainer(ARCH, images, settings, num_classes=120, seed=seed, channels=4,
                   cells_per_stage=1)


def test_training_stops_after_any_epoch_and_continues_exactly(toy_live: LiveEvaluator) -> None:
    """The state (weights, BN statistics, momentum, epoch) through a file, into a new trainer."""
    straight = small_trainer(toy_live.images).run()
    first = small_trainer(toy_live.images)
    head = first.run(stop_epoch=1)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = small_trainer(toy_live.images)
    resumed.load_state_dict(torch.load(buffer))
    tail = resumed.run()
    assert [TIME.sub("", r.line()) for r in head + tail] == \
        [TIME.sub("", r.line()) for r in straight]
    assert [r.epoch for r in tail] == [2, 3]
    with pytest.raises(ValueError, match="checkpoint of seed 1"):
        small_trainer(toy_live.images, seed=2).load_state_dict(first.state_dict())


def test_a_small_network_learns_digits(toy_live: LiveEvaluator) -> None:
    """The loop trains: far above chance (10%) after 4 short epochs (70% here; seeds 1 and 2
    give 61% and 59%)."""
    settings = TrainingSettings(4, batch_size=32, train_batches=12, eval_images=360)
    trainer = Trainer(index_to_arch(6111), toy_live.images, settings, num_classes=120, seed=0,
                      channels=8, cells_per_stage=1)
    results = trainer.run()
    assert results[-1].train_loss < results[0].train_loss
    assert results[-1].eval_accuracy > 40, [r.line() for r in results]
