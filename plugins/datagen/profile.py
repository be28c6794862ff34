"""Sampling profiles: the ``[datagen.NAME]`` tables of task_config.toml, checked before anything runs.

A profile fixes what a (taskid, model_idx) means and how it is trained: the space, the streams
(taskids ``first_taskid .. first_taskid + streams - 1``) and the samples per stream (model_idx),
the data sets, the schedule (``epochs``: NB201's cosine depends on the total) and the training
settings; and holds rough resource estimates for packing Slurm jobs before anything is measured.

Pure Python: reading and checking a profile imports neither numpy nor torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from driver.errors import ConfigError, did_you_mean

TABLE = "datagen"
#: Keys whose change would change the meaning of data already generated (see :func:`check_same`).
SCHEDULE_KEYS = ("space", "datasets", "epochs", "mode", "data", "channels", "cells_per_stage",
                 "threads")


@dataclass(frozen=True)
class Profile:
    """One ``[datagen.NAME]`` table, with its defaults filled in."""

    name: str
    space: str = "nb201"
    streams: int = 1
    first_taskid: int = 0
    samples: int = 1
    datasets: tuple[str, ...] = ("cifar10-valid",)
    epochs: int = 200
    mode: str = "full"
    data: str = ""  # "" = the mode's default: digits in toy mode, files in full mode
    data_dir: str = ""
    device: str = "cpu"
    channels: int = 16
    cells_per_stage: int = 5
    threads: int = 1  # torch threads per training process: results depend on it on a CPU
    directory: str = ""  # "" = datagen/NAME beside task_config.toml
    estimate_s_per_epoch: float = 60.0  # before anything is measured
    cpus_per_job: int = 1
    memory_mib: int = 4096
    job_hours: float = 4.0
    partition: str = ""

    @property
    def taskids(self) -> range:
        """The streams of this profile."""
        return range(self.first_taskid, self.first_taskid + self.streams)

    @property
    def source(self) -> str:
        """Where the images come from (``digits``, ``files`` or ``synthetic``)."""
        return self.data or ("digits" if self.mode == "toy" else "files")

    def to_json(self) -> dict[str, Any]:
        """The profile as a JSON object (written to the profile's directory by ``init``)."""
        document = asdict(self)
        document["datasets"] = list(self.datasets)
        return document


_KINDS: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str}
_TYPES: dict[str, type | tuple[type, ...]] = {
    f.name: _KINDS.get(str(f.type), tuple) for f in fields(Profile)}
#: The lowest value of each number: >= 1 for counts, > 0 (``None``) for amounts.
_AT_LEAST: dict[str, float | None] = {
    "streams": 1, "samples": 1, "epochs": 1, "channels": 1, "cells_per_stage": 1, "threads": 1,
    "cpus_per_job": 1, "memory_mib": 1, "first_taskid": 0, "estimate_s_per_epoch": None,
    "job_hours": None}


def load_profiles(tables: Mapping[str, Any], path: Path) -> dict[str, Profile]:
    """Every profile in the config's ``datagen`` table, checked (ConfigError on the first fault)."""
    section = tables.get(TABLE, {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path}: [{TABLE}] must be a table of profiles ([{TABLE}.NAME])")
    return {name: parse_profile(name, table, path) for name, table in section.items()}


def profile_named(tables: Mapping[str, Any], path: Path, name: str) -> Profile:
    """The profile *name*, checked; ConfigError with the known names otherwise."""
    profiles = load_profiles(tables, path)
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "(none)"
        raise ConfigError(f"{path}: no profile [{TABLE}.{name}]{did_you_mean(name, profiles)}; "
                          f"profiles: {known}")
    return profiles[name]


def parse_profile(name: str, table: Any, path: Path) -> Profile:
    """Check one ``[datagen.NAME]`` table: known keys, types, ranges, known names."""
    where = f"{path}: [{TABLE}.{name}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        values[key] = _checked(where, key, value)
    profile = Profile(name=name, **values)
    _check_names(where, profile)
    return profile


def _checked(where: str, key: str, value: Any) -> Any:
    if key not in _TYPES or key == "name":
        known = [k for k in _TYPES if k != "name"]
        raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, known)}; "
                          f"known: {', '.join(known)}")
    if key == "datasets":
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value)):
            raise ConfigError(f"{where} datasets = {value!r}: expected a non-empty list of "
                              f"distinct data set names, e.g. datasets = ['cifar10-valid']")
        return tuple(value)
    expected = _TYPES[key]
    if isinstance(value, bool) or not isinstance(value, expected):
        kind = "a whole number" if expected is int else "a string" if expected is str else "a number"
        raise ConfigError(f"{where} {key} = {value!r}: expected {kind}")
    if key in _AT_LEAST:
        lowest, number = _AT_LEAST[key], float(value)  # type: ignore[arg-type]  # int or float
        if lowest is None and not (number > 0 and math.isfinite(number)):  # TOML has inf
            raise ConfigError(f"{where} {key} = {value!r}: must be > 0 and finite")
        if lowest is not None and number < lowest:
            raise ConfigError(f"{where} {key} = {value!r}: must be >= {lowest}")
    return value


def _check_names(where: str, profile: Profile) -> None:
    """Mode, data source and data sets: the NB201 trainer's names (pure-Python checks)."""
    from plugins.nas201.costs import BENCHMARK_SHAPES as BENCHMARKS
    from plugins.nas201.schedule import MODES, SOURCES

    for key, value, known in (("mode", profile.mode, MODES),
                              ("data", profile.source, SOURCES)):
        if value not in known:
            raise ConfigError(f"{where} {key} = {value!r}{did_you_mean(value, known)}; "
                              f"expected one of {', '.join(known)}")
    for dataset in profile.datasets:
        if dataset not in BENCHMARKS:
            raise ConfigError(f"{where} datasets: unknown data set {dataset!r}"
                              f"{did_you_mean(dataset, BENCHMARKS)}; known: "
                              f"{', '.join(BENCHMARKS)}")
    if profile.source == "files" and not profile.data_dir:
        raise ConfigError(f"{where}: data = 'files' (the default in full mode) needs data_dir = "
                          f"'DIR' (the folder holding the data set), or set data = 'digits'")


def check_same(old: Mapping[str, Any], new: Profile, where: str) -> None:
    """ConfigError when *new* changes a key that gives the data already written another meaning."""
    for key in SCHEDULE_KEYS:
        now = new.to_json()[key]
        if key in old and old[key] != now:
            raise ConfigError(
                f"{where}: {key} was {old[key]!r} when this profile's data was initialised and is "
                f"{now!r} now; that would change what the stored epochs mean. Put it back, or "
                f"make a new profile ([{TABLE}.NEW_NAME]) for the new setting")


def profile_directory(profile: Profile, config_path: Path) -> Path:
    """Where the profile's samples, store and merged table live."""
    base = config_path.resolve().parent
    return base / (profile.directory or f"{TABLE}/{profile.name}")
