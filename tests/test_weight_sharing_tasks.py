"""The weight-sharing NAS task end to end through the real CLI (task_config.toml's sections), a
drop-in seventh algorithm through the same task, the task's errors, and every algorithm's
full-size supernet (C=16, N=5, 32x32) taking one search step on a CPU with section 6's settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import REPO
from plugins.nas201.space import arch_string
from plugins.nas201.supernet import Supernet
from plugins.nas201.table import NB201Table
from plugins.weight_sharing.algorithms import ALGORITHMS
from plugins.weight_sharing.loop import Batch, EpochStats, WeightOptimizer, make_strategy
from plugins.weight_sharing.settings import PAPER, PAPER_RESULTS, settings_for
from test_nas201_costs import needs_table

CONFIG = str(REPO / "task_config.toml")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
ALL_3X3 = arch_string(("nor_conv_3x3",) * 6)


def table_accuracy(arch: str, dataset: str) -> float:
    table = NB201Table()
    info = table.query_meta_info_by_index(table.query_index_by_arch(arch))
    return info.get_metrics(dataset, "x-valid")["accuracy"]


def run_task(cli, tmp_path: Path, task: str, *extra: str):  # type: ignore[no-untyped-def]
    done = cli("run", "--config", CONFIG, "--quiet", "--task-name", task, *extra,
               "--output", str(tmp_path / "out.json"), "--runs-dir", str(tmp_path / "runs"),
               timeout=600, env=ONE_THREAD)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    record = json.loads(next((tmp_path / "runs" / task).glob("*/record.json")).read_text())
    log = Path(record["run_dir"], "output.log").read_text()
    return {k.removeprefix(task + "."): v for k, v in result.items()}, log


@needs_table
def test_gdas_toy_search_through_the_cli(cli, tmp_path: Path) -> None:
    values, log = run_task(cli, tmp_path, "nas201_gdas")
    epochs = re.findall(r"^search: epoch=(\d+)/3 .* tau=(\S+) .* table_accuracy=(\S+) arch=(\S+)$",
                        log, re.M)
    assert [int(e[0]) for e in epochs] == [1, 2, 3] and values["search_epochs"] == 3
    assert [float(e[1]) for e in epochs] == pytest.approx([10.0, 5.05, 0.1])
    for _, _, accuracy, arch in epochs:  # each epoch's cell, looked up in the table
        assert float(accuracy) == pytest.approx(table_accuracy(arch, "cifar10-valid"))
    chosen = re.search(r"^final: arch=(\S+)$", log, re.M).group(1)  # type: ignore[union-attr]
    assert chosen == epochs[-1][3]  # GDAS keeps argmax(alpha) of the last epoch
    for metric, dataset in (("final_valid_accuracy", "cifar10-valid"),
                            ("final_cifar100_accuracy", "cifar100"),
                            ("final_imagenet16_accuracy", "ImageNet16-120")):
        assert values[metric] == pytest.approx(table_accuracy(chosen, dataset))
    assert values["search_time"] > 0 and values["toy_mode"] == 1
    assert (values["paper_valid_accuracy"], values["paper_cifar100_accuracy"],
            values["paper_imagenet16_accuracy"]) == PAPER_RESULTS["gdas"]
    assert '"channels": 8' in log and "protocol: toy=1 mode=toy supernet=C8xN1" in log


SEVENTH = '''
from driver.search import NASAlgorithm

class AllConv(NASAlgorithm):
    """A seventh algorithm: always the all-3x3 cell."""
    name = "all-conv"

    def run(self, space, seed, log):
        log(f"search: epoch=1/1 chose the all-conv cell (seed {seed}, space {space.name})")
        return "ARCH"

def bench_driver_register_nas_algorithms():
    return {"all-conv": AllConv}
'''


@needs_table
def test_a_drop_in_seventh_algorithm_runs_through_the_same_task(cli, tmp_path: Path) -> None:
    plugins = tmp_path / "more_plugins"
    plugins.mkdir()
    (plugins / "seventh.py").write_text(SEVENTH.replace("ARCH", ALL_3X3))
    values, log = run_task(cli, tmp_path, "nas201_rsps", "--plugins-dir", str(plugins),
                           "--set", "algorithm=all-conv")
    assert "chose the all-conv cell (seed 0, space nb201)" in log
    assert values["final_valid_accuracy"] == pytest.approx(table_accuracy(ALL_3X3, "cifar10-valid"))
    assert values["search_epochs"] == 1 and "paper_valid_accuracy" not in values


def test_a_misspelt_algorithm_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "tasks/nas201_weight_sharing.py"),
                           "--algorithm", "gdsa"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "did you mean 'gdas'" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, str(REPO / "tasks/nas201_weight_sharing.py"),
                           "--algorithm", "gdas", "--option", "epochz=3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "did you mean 'epochs'" in done.stderr


# --- full mode is not dead code --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_full_size_supernet_takes_one_search_step(name: str) -> None:
    torch.set_num_threads(1)
    settings = replace(settings_for(PAPER[name], "full"), batch_size=2)
    assert (settings.channels, settings.cells_per_stage) == (16, 5)
    torch.manual_seed(0)
    net = Supernet(10, settings.channels, settings.cells_per_stage)
    assert len(net.cells()) == 15 and sum(p.numel() for p in net.parameters()) > 1e6
    strategy = make_strategy(ALGORITHMS[name].strategy, net, settings, torch.Generator())
    g = torch.Generator().manual_seed(0)
    x, ax = (torch.randn(2, 3, 32, 32, generator=g) for _ in range(2))
    batch = Batch(x, torch.tensor([0, 1]), ax, torch.tensor([2, 3]))
    before = [p.detach().clone() for p in net.parameters()]
    weights = WeightOptimizer(net, settings)
    weights.set_epoch(0)
    stats = EpochStats()
    strategy.step(batch, weights, stats)
    assert stats.seen == 2 and stats.loss_sum > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    if hasattr(strategy, "alpha"):
        assert strategy.alpha.grad is not None and bool(strategy.alpha.grad.abs().sum() > 0)


def test_full_settings_are_section_6s() -> None:
    darts, gdas, setn, rsps, enas = (PAPER[n] for n in ("darts-v1", "gdas", "setn", "rsps", "enas"))
    assert PAPER["darts-v2"] == darts
    assert (darts.epochs, darts.learning_rate, darts.min_learning_rate, darts.momentum,
            darts.nesterov, darts.weight_decay, darts.batch_size, darts.grad_clip) == (
        50, 0.025, 0.001, 0.9, True, 5e-4, 64, 5.0)
    for s in (darts, gdas, setn, rsps):
        assert (s.arch_learning_rate, s.arch_betas, s.arch_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)
        assert (s.channels, s.cells_per_stage, s.track_running_stats) == (16, 5, True)
    assert (gdas.epochs, gdas.tau_max, gdas.tau_min, gdas.grad_clip) == (250, 10.0, 0.1, 5.0)
    assert (setn.epochs, setn.eval_batch_size, setn.grad_clip, setn.candidates) == (250, 512, None, 100)
    assert (rsps.epochs, rsps.grad_clip, rsps.candidates) == (250, 5.0, 100)
    assert (enas.epochs, enas.learning_rate, enas.min_learning_rate, enas.lr_period,
            enas.weight_decay, enas.batch_size, enas.grad_clip) == (250, 0.05, 0.0005, 10, 2.5e-4,
                                                                    128, 5.0)
    assert (enas.arch_learning_rate, enas.arch_betas, enas.arch_eps, enas.entropy_weight,
            enas.baseline_decay, enas.controller_steps, enas.controller_aggregate,
            enas.candidates, enas.eval_batch_size) == (1e-3, (0.0, 0.999), 1e-3, 1e-4, 0.99, 50,
                                                        20, 100, 128)
    assert darts.learning_rate_at(0) == 0.025 and darts.learning_rate_at(50) == pytest.approx(0.001)
    assert enas.learning_rate_at(10) == pytest.approx(0.0005) and enas.learning_rate_at(20) == 0.05
    assert settings_for(darts, "full", "nats").track_running_stats is False
    from plugins.weight_sharing.enas import Controller

    controller = Controller()
    assert (controller.lstm.num_layers, controller.lstm.hidden_size, controller.temperature,
            controller.tanh_constant) == (2, 32, 5.0, 2.5)


def test_the_benchmark_runs_and_its_gpu_check_says_when_there_is_no_gpu() -> None:
    script = str(REPO / "benchmarks/nas201_weight_sharing.py")
    done = subprocess.run([sys.executable, script, "--skip-epochs", "--repeat", "1",
                           "--algorithms", "gdas,darts-v2", "--batch-size", "4"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^RATIO ws_step_gdas .* = \d+\.\d+x", done.stdout, re.M)
    assert re.search(r"^RATIO ws_step_darts-v2 .* = \d+\.\d+x", done.stdout, re.M)
    done = subprocess.run([sys.executable, script, "--gpu"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2 and "no CUDA device" in done.stderr
