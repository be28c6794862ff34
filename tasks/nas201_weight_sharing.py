"""Run one weight-sharing NAS algorithm on NAS-Bench-201, logging one line per search epoch.

    python tasks/nas201_weight_sharing.py --algorithm gdas --mode toy --seed 0
    python tasks/nas201_weight_sharing.py --algorithm darts-v2 --mode full --data-dir DIR

The algorithm is looked up by name in the ``nas_algorithms`` registry (the six of
``plugins.weight_sharing``: darts-v1, darts-v2, gdas, setn, enas, rsps; or any plugin's), so a
drop-in plugin file adds one. ``--mode toy`` (default) searches a reduced supernet on a few
batches of scikit-learn digits (seconds on a CPU); ``--mode full`` the paper's setting on
CIFAR-10's files under ``--data-dir`` (a GPU). ``--bn nats`` turns the cells' BN statistics off
(NATS-Bench's rerun). ``--option KEY=VALUE`` replaces any setting (``epochs=5``). Output::

    config: {"algorithm": "gdas", "mode": "toy", ...}
    search: epoch=1/3 lr=0.025 train_loss=2.3 ... tau=10.0 ... table_accuracy=88.1 arch=|...|
    final: arch=|nor_conv_3x3~0|+|...|
    final: valid_accuracy=89.5
    final: cifar100_accuracy=66.2
    final: imagenet16_accuracy=38.9
    final: search_time_s=12.3
    paper: valid_accuracy=89.89 cifar100_accuracy=71.34 imagenet16_accuracy=41.59 protocol=full

The ``final:`` accuracies are the chosen cell's in the NAS-Bench-201 table (mean 200-epoch
accuracy on cifar10-valid, and on the x-valid halves of CIFAR-100 and ImageNet16-120);
``paper:`` is what the NAS-Bench-201 paper reported for the algorithm (full mode, 3 runs).
Exit codes: 0 done, 2 usage error, 3 configuration or data error, 7 plugin error.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from driver.errors import ConfigError, did_you_mean  # noqa: E402
from driver.plugins import Plugins, load_task_plugins  # noqa: E402
from plugins.nas201.space import arch_to_index, index_to_arch  # noqa: E402
from tasks._entry import guarded  # noqa: E402
from tasks.nas_search import lookup, parse_options  # noqa: E402

#: The table's answers printed at the end: (line key, data set).
TABLE_COLUMNS = (("valid_accuracy", "cifar10-valid"), ("cifar100_accuracy", "cifar100"),
                 ("imagenet16_accuracy", "ImageNet16-120"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--algorithm", required=True, help="registered NAS algorithm, e.g. gdas")
    parser.add_argument("--mode", default="toy", help="toy (digits, CPU) or full (CIFAR-10, GPU)")
    parser.add_argument("--bn", default="paper", help="paper or nats (cell BN statistics off)")
    parser.add_argument("--data", default="auto", help="auto, files, digits, synthetic")
    parser.add_argument("--data-dir", default="", help="full: the folder of cifar-10-batches-py/")
    parser.add_argument("--epochs", type=int, default=0, help="0: the mode's (toy 3, paper's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda:1")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = default")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="algorithm option or setting, e.g. candidates=20 (repeatable)")
    return parser.parse_args(argv)


def algorithm_options(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The options of the command line that the algorithm's class takes (all of ``--option``;
    mode, bn, data, data_dir, device and epochs only where it takes them)."""
    options = parse_options(args.option)
    common = {"mode": args.mode, "bn": args.bn, "data_dir": args.data_dir or None,
              "data": None if args.data == "auto" else args.data, "device": args.device}
    if args.epochs:
        common["epochs"] = args.epochs
    parameters = inspect.signature(cls).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key in options:
        if key not in parameters and not open_ended:
            raise ConfigError(f"NAS algorithm {args.algorithm!r} takes no option {key!r}"
                              f"{did_you_mean(key, parameters)}; it takes "
                              f"{', '.join(parameters) or 'none'}")
    common = {k: v for k, v in common.items() if k in parameters or (open_ended and k == "epochs")}
    return {**common, **options}


def nb201_arch(value: Any) -> str | None:
    """A check of the algorithm's answer: a NAS-Bench-201 arch string."""
    if isinstance(value, str) and arch_to_index(value) >= 0:
        return None
    return "expected a NAS-Bench-201 arch string such as '|nor_conv_3x3~0|+|...|'"


def table_values(arch: str) -> dict[str, float]:
    """The cell's mean accuracies in the NAS-Bench-201 table, by line key."""
    from plugins.nas201.table import NB201Table

    info = NB201Table().query_meta_info_by_index(arch_to_index(arch))
    return {key: float(info.get_metrics(dataset, "x-valid")["accuracy"])
            for key, dataset in TABLE_COLUMNS}


def run(args: argparse.Namespace) -> None:
    """Check everything, then search and print the lines."""
    plugins: Plugins = load_task_plugins()
    found = lookup(plugins, "nas_algorithms", args.algorithm)
    algorithm = found.create(**algorithm_options(found.target, args))
    space = lookup(plugins, "search_spaces", "nb201").create()
    table_values(index_to_arch(0))  # the table is installed: fail now, not after the search
    import torch  # after the checks: a typo costs no torch import

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)  # reproducible on a CPU
    described = _describe(algorithm.target, args)
    print("config: " + json.dumps(described, sort_keys=True, default=str), flush=True)
    print(_protocol(described), flush=True)
    start = time.perf_counter()
    arch = algorithm.run(space.target, args.seed, lambda line: print(line, flush=True),
                         returns=nb201_arch)
    search_time_s = time.perf_counter() - start
    print(f"final: arch={arch}")
    for key, value in table_values(arch).items():
        print(f"final: {key}={value!r}")
    print(f"final: search_time_s={search_time_s!r}", flush=True)
    _print_paper(args.algorithm)


def _describe(algorithm: Any, args: argparse.Namespace) -> dict[str, Any]:
    described: dict[str, Any] = {"algorithm": args.algorithm, "seed": args.seed,
                                 "mode": getattr(algorithm, "mode", args.mode)}
    settings = getattr(algorithm, "settings", None)
    if settings is not None:
        from plugins.weight_sharing.settings import as_dict

        described.update(settings=as_dict(settings), bn=getattr(algorithm, "bn", None),
                         data=getattr(algorithm, "data", None))
    return described


def _protocol(described: dict[str, Any]) -> str:
    """``protocol: toy=1 mode=toy ...``: how this search ran, one line (scraped as toy_mode)."""
    settings = described.get("settings") or {}
    shape = (f" supernet=C{settings['channels']}xN{settings['cells_per_stage']} "
             f"epochs={settings['epochs']} data={described['data']} bn={described['bn']}"
             if settings else "")
    toy = int(described["mode"] == "toy")
    return f"protocol: toy={toy} mode={described['mode']}{shape} table=NAS-Bench-201 200-epoch means"


def _print_paper(name: str) -> None:
    from plugins.weight_sharing.settings import PAPER_RESULTS

    if name in PAPER_RESULTS:
        c10, c100, im16 = PAPER_RESULTS[name]
        print(f"paper: valid_accuracy={c10} cifar100_accuracy={c100} imagenet16_accuracy={im16} "
              f"protocol=full", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors become one message on stderr and the documented exit code."""
    args = parse_args(argv)
    return guarded("nas201_weight_sharing", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
