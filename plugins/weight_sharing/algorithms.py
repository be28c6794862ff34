"""The six weight-sharing NAS algorithms as :class:`driver.search.NASAlgorithm` classes.

Pure Python: each class holds its name, its paper settings (``plugins.weight_sharing.settings``)
and the ``module:Class`` of its torch part (a :class:`plugins.weight_sharing.loop.Strategy`),
imported when :meth:`WeightSharingNAS.run` runs. Options are checked when the object is made,
before anything is loaded.
"""

from __future__ import annotations

from typing import Any, Callable

from driver.errors import ConfigError
from driver.search import Config, NASAlgorithm, SearchSpace
from plugins.nas201.schedule import check_source
from plugins.weight_sharing import settings as paper
from plugins.weight_sharing.settings import SearchSettings, settings_for


def table_accuracy(arch: str) -> float:
    """The cell's mean validation accuracy on cifar10-valid in the NAS-Bench-201 table."""
    from plugins.nas201.table import NB201Table

    table = NB201Table()
    info = table.query_meta_info_by_index(table.query_index_by_arch(arch))
    return float(info.get_metrics("cifar10-valid", "x-valid")["accuracy"])


class WeightSharingNAS(NASAlgorithm):
    """A weight-sharing search on the NAS-Bench-201 supernet; :meth:`run` returns the arch
    string of the cell it chose.

    *mode* ``toy`` (default; digits, a reduced supernet, seconds on a CPU) or ``full`` (the
    paper's, CIFAR-10's files under *data_dir*); *bn* ``paper`` or ``nats`` (BN statistics off);
    *data* overrides the image source (``digits``, ``files``, ``synthetic``); *device* ``auto``
    (a GPU if any), ``cpu``, ``cuda:1``...; any :class:`SearchSettings` field as a keyword
    replaces the mode's value (``epochs=5``). After :meth:`run`, :attr:`outcome` holds the
    epochs' reports (``plugins.weight_sharing.loop.SearchOutcome``).
    """

    name = "weight-sharing"
    paper_settings: SearchSettings = paper.DARTS
    strategy = ""  # "module:Class" of the torch part

    def __init__(self, mode: str = "toy", bn: str = "paper", data: str | None = None,
                 data_dir: str | None = None, device: str | None = "auto",
                 synthetic_images: tuple[int, int] | None = None, **settings: Any) -> None:
        self.settings = settings_for(self.paper_settings, mode, bn, settings)
        self.mode, self.bn, self.device = mode, bn, device
        self.data = data or ("digits" if mode == "toy" else "files")
        check_source(self.data)
        if self.data == "files" and not data_dir:
            raise ConfigError(f"{self.name}: data 'files' (mode=full) needs data_dir, the folder "
                              f"holding cifar-10-batches-py/; or use data=digits")
        self.data_dir = data_dir
        # data=synthetic: as many images as CIFAR-10's halves in full mode (a real epoch's length)
        train, valid = synthetic_images or ((1024, 256) if mode == "toy" else (25000, 25000))
        self.synthetic_images = (int(train), int(valid))
        self.outcome: Any = None

    def run(self, space: SearchSpace, seed: int, log: Callable[[str], None],
            score: Callable[[str], float] = table_accuracy) -> Config:
        """Search; one line per epoch goes to *log*, with *score* of the epoch's cell."""
        if getattr(space, "name", None) != "nb201":
            raise ConfigError(f"{self.name} searches the NAS-Bench-201 supernet; it needs the "
                              f"'nb201' space, got {getattr(space, 'name', space)!r}")
        from plugins.weight_sharing.loop import search

        self.outcome = search(self, seed, log, score)
        return self.outcome.arch


class DartsV1(WeightSharingNAS):
    """DARTS, first order: weight step, then architecture step (50 epochs)."""

    name, paper_settings = "darts-v1", paper.DARTS
    strategy = "plugins.weight_sharing.darts:FirstOrder"


class DartsV2(WeightSharingNAS):
    """DARTS, second order: unrolled architecture step (finite-difference Hessian-vector
    product), then weight step (50 epochs)."""

    name, paper_settings = "darts-v2", paper.DARTS
    strategy = "plugins.weight_sharing.darts:SecondOrder"


class GDAS(WeightSharingNAS):
    """GDAS: Gumbel hard sampling, straight-through, tau 10 -> 0.1 (250 epochs)."""

    name, paper_settings, strategy = "gdas", paper.GDAS, "plugins.weight_sharing.gdas:GDAS"


class SETN(WeightSharingNAS):
    """SETN: uniform paths for the weights, the mixture for alpha, top-100 scored (250 epochs)."""

    name, paper_settings, strategy = "setn", paper.SETN, "plugins.weight_sharing.setn:SETN"


class ENAS(WeightSharingNAS):
    """ENAS: LSTM controller, REINFORCE with entropy bonus and EMA baseline (250 epochs)."""

    name, paper_settings, strategy = "enas", paper.ENAS, "plugins.weight_sharing.enas:ENAS"


class RSPS(WeightSharingNAS):
    """Random search with parameter sharing: random paths, 100 random cells scored (250 epochs)."""

    name, paper_settings, strategy = "rsps", paper.RSPS, "plugins.weight_sharing.rsps:RSPS"


ALGORITHMS: dict[str, type[WeightSharingNAS]] = {
    cls.name: cls for cls in (DartsV1, DartsV2, GDAS, SETN, ENAS, RSPS)
}
