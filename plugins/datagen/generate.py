"""``init`` and ``run``: draw a profile's samples, then train them epoch by epoch into the store.

``init`` writes ``profile.json`` and ``samples.json`` in the profile's directory; re-running it
writes the same bytes, and a larger stream count or taskid range adds streams without changing
the old ones. ``run`` trains every model of the chosen taskids up to epoch E of the profile's
schedule, continuing each from its checkpoint; the values are those of an uninterrupted run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from driver.errors import ConfigError, DataError
from driver.results import write_text_atomic
from plugins.datagen.profile import Profile, check_same
from plugins.datagen.sampling import Sample, draw_samples
from plugins.datagen.store import StreamStore, store_path

if TYPE_CHECKING:
    from driver.search import SearchSpace
    from plugins.nas201.images import BenchmarkImages
    from plugins.nas201.training import EpochResult, Trainer

PROFILE_FILE, SAMPLES_FILE = "profile.json", "samples.json"
DATA_SEED = 777  # the image subset and synthetic pixels (not the models' seeds)
Log = Callable[[str], None]


def init_profile(profile: Profile, directory: Path, space: SearchSpace) -> list[Sample]:
    """Write the profile and its samples (every taskid, drawn up front); refuse a profile whose
    schedule changed since data was written with it."""
    old = read_json(directory / PROFILE_FILE, {})
    check_same(old, profile, f"{directory / PROFILE_FILE}")
    old_samples = read_json(directory / SAMPLES_FILE, [])
    samples = [s for t in profile.taskids for s in draw_samples(space, t, profile.samples)]
    drawn = {(s.taskid, s.model_idx) for s in samples}
    kept = [s for s in old_samples if (s["taskid"], s["model_idx"]) not in drawn]
    rows = sorted(kept + [s.to_json() for s in samples],
                  key=lambda s: (s["taskid"], s["model_idx"]))
    write_text_atomic(directory / PROFILE_FILE, json.dumps(profile.to_json(), indent=1) + "\n")
    write_text_atomic(directory / SAMPLES_FILE, json.dumps(rows, indent=1) + "\n")
    return samples


def read_json(path: Path, default: Any) -> Any:
    """The JSON document at *path*, or *default* when there is none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise DataError(f"{path}: not JSON ({exc}); run `datagen NAME init` again") from None


def read_samples(directory: Path, taskids: Iterable[int]) -> list[Sample]:
    """The samples of *taskids*, as ``init`` drew them (DataError when not initialised)."""
    wanted = set(taskids)
    rows = read_json(directory / SAMPLES_FILE, None)
    if rows is None:
        raise DataError(f"{directory}: no {SAMPLES_FILE}; run `bench-driver datagen NAME init` "
                        f"first")
    samples = [Sample(**row) for row in rows if row["taskid"] in wanted]
    missing = wanted - {s.taskid for s in samples}
    if missing:
        raise DataError(f"{directory / SAMPLES_FILE} has no taskid {sorted(missing)}; run "
                        f"`bench-driver datagen NAME init` after changing the profile")
    return samples


def check_epochs(profile: Profile, epochs: int) -> None:
    """``--epochs E``: 1 <= E <= the schedule's epochs."""
    if not 1 <= epochs <= profile.epochs:
        raise ConfigError(f"--epochs {epochs}: profile {profile.name!r} has a {profile.epochs}-"
                          f"epoch schedule; choose 1..{profile.epochs} (a longer schedule is a "
                          f"new profile: the cosine depends on the total)")


def run_stream(profile: Profile, directory: Path, taskid: int, stop_epoch: int,
               log: Log = print) -> int:
    """Train every model of *taskid* up to *stop_epoch*; return the epochs trained."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(profile.threads)  # CPU sums depend on the thread count
    store = StreamStore(store_path(directory, taskid))
    try:
        return sum(_run_dataset(profile, store, dataset, read_samples(directory, [taskid]),
                                stop_epoch, log) for dataset in profile.datasets)
    finally:
        store.close()
        torch.set_num_threads(threads)


def _run_dataset(profile: Profile, store: StreamStore, dataset: str, samples: list[Sample],
                 stop_epoch: int, log: Log) -> int:
    todo = [s for s in samples
            if store.epochs_done(s.taskid, s.model_idx, dataset) < stop_epoch]
    if not todo:
        return 0
    images = _images(profile, dataset)
    trained = 0
    for sample in todo:
        trained += _train_model(profile, store, dataset, images, sample, stop_epoch, log)
    return trained


def _images(profile: Profile, dataset: str) -> BenchmarkImages:
    from plugins.nas201.images import load_images
    from plugins.nas201.live import on_device
    from plugins.nas201.training import resolve_device

    images = load_images(dataset, profile.source, profile.data_dir or None, seed=DATA_SEED)
    return on_device(images, resolve_device(profile.device))


def _train_model(profile: Profile, store: StreamStore, dataset: str, images: BenchmarkImages,
                 sample: Sample, stop_epoch: int, log: Log) -> int:
    key = (sample.taskid, sample.model_idx, dataset)
    trainer = make_trainer(profile, dataset, images, sample)
    saved = store.checkpoint(*key)
    if saved is not None:
        trainer.load_state_dict(_load_state(saved[1]))
    elif store.epochs_done(*key):
        raise DataError(f"{store.path}: model {key} has epochs but no checkpoint to continue "
                        f"from; delete its rows or the file to retrain it")
    else:
        _record_costs(store, key, sample, dataset, profile)
    start = trainer.epoch
    while trainer.epoch < stop_epoch:
        result = trainer.train_epoch()
        done = trainer.epoch == profile.epochs
        store.record_epoch(key, result.epoch, epoch_values(result),
                           None if done else _dump_state(trainer))
        log(f"datagen: taskid={sample.taskid} model_idx={sample.model_idx} dataset={dataset} "
            + result.line())
    return trainer.epoch - start


def make_trainer(profile: Profile, dataset: str, images: BenchmarkImages,
                 sample: Sample) -> Trainer:
    """A fresh trainer of *sample* with the profile's schedule (NB201 arch strings only)."""
    from plugins.nas201.costs import shape_of
    from plugins.nas201.schedule import settings_for
    from plugins.nas201.space import arch_to_index
    from plugins.nas201.training import Trainer, resolve_device

    if not isinstance(sample.config, str) or arch_to_index(sample.config) < 0:
        raise ConfigError(f"datagen: {sample.config!r} (taskid {sample.taskid}, model_idx "
                          f"{sample.model_idx}) is not a NAS-Bench-201 arch string; the datagen "
                          f"trainer is the NB201 network's (space = 'nb201')")
    settings = settings_for(profile.mode, profile.epochs)
    return Trainer(sample.config, images, settings, num_classes=shape_of(dataset).num_classes,
                   seed=sample.seed, device=resolve_device(profile.device),
                   channels=profile.channels, cells_per_stage=profile.cells_per_stage)


def epoch_values(result: EpochResult) -> dict[str, float]:
    """The store's columns of one epoch."""
    return {"learning_rate": result.learning_rate, "train_loss": result.train_loss,
            "train_accuracy": result.train_accuracy, "valid_loss": result.eval_loss,
            "valid_accuracy": result.eval_accuracy, "train_time_s": result.train_time_s,
            "eval_time_s": result.eval_time_s, "latency_s": result.latency_s}


def _record_costs(store: StreamStore, key: tuple[int, int, str], sample: Sample, dataset: str,
                  profile: Profile) -> None:
    from plugins.nas201.costs import NetworkShape, flop_count, param_count, shape_of

    base = shape_of(dataset)
    shape = NetworkShape(base.num_classes, base.image_size, profile.channels,
                         profile.cells_per_stage)
    store.record_model(key, sample.config, sample.seed, param_count(sample.config, shape) / 1e6,
                       flop_count(sample.config, shape) / 1e6)


def _dump_state(trainer: Trainer) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    return buffer.getvalue()


def _load_state(data: bytes) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return state
