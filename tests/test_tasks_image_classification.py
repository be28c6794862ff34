"""tasks/image_classification.py run as real subprocesses on the CPU, scraped with the patterns
of its tasks in task_config.toml: log format, seeds, gloo DDP, torch.compile, and the digits
task (>= 95%) run through the bench-driver CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

np = pytest.importorskip("numpy")
# The workload's own imports (torch ~1.5 s, scikit-learn ~1 s) are only looked up, not imported.
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("sklearn") is None:
    pytest.skip("the image-classification tasks need torch and scikit-learn (extra 'tasks')",
                allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tasks" / "image_classification.py"
TOML = REPO / "task_config.toml"
IMAGE_TASKS = ("digits_mlp", "resnet18_cifar10", "resnet50_cifar10", "resnet50_cifar10_compiled")


def _resolved_tasks() -> dict[str, Any]:
    """The image tasks as the driver resolves them (``extends`` and ``[defaults]`` applied)."""
    from driver.config import load_config
    from driver.plugins import load_plugins

    plugins = load_plugins(autoload=False)
    config = load_config(TOML, plugins.registry("config_tables"))  # as the CLI reads it
    methods = plugins.registry("compute_methods")
    return {name: config.task(name, methods) for name in IMAGE_TASKS}


TASKS: dict[str, Any] = _resolved_tasks()
OLD_METRICS = {"speed": "average", "training_accuracy": "last", "validation_accuracy": "last",
               "training_time": "total"}
BUILTIN_PARAMS = {"python", "num_gpus", "seed", "repetition", "run_dir"}
TIMEOUT_S = 300


def start_script(*args: str, summary: Path | None = None) -> subprocess.Popen[str]:
    """Start the benchmark script; with *summary*, also ask for its JSON summary there."""
    cmd = [sys.executable, str(SCRIPT), "--threads", "1", *args]  # 1: no OpenMP spinning
    if summary is not None:
        cmd += ["--summary-json", str(summary)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


def finish(proc: subprocess.Popen[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Wait for a started run; with *check*, fail the test (showing stderr) unless it exited 0."""
    out, err = proc.communicate(timeout=TIMEOUT_S)
    if check:
        assert proc.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_script(*args: str, summary: Path | None = None, check: bool = True
               ) -> subprocess.CompletedProcess[str]:
    """Run the benchmark script to the end."""
    return finish(start_script(*args, summary=summary), check=check)


def scrape(task: str, text: str) -> dict[str, list[float]]:
    """What the driver reads: each pattern's first match per line, ``float()`` of its group."""
    metrics = TASKS[task].metrics
    compiled = [re.compile(m.pattern, re.MULTILINE) for m in metrics]
    found: dict[str, list[float]] = {m.name: [] for m in metrics}
    for line in text.splitlines():
        for name, pattern in zip([m.name for m in metrics], compiled):
            m = pattern.search(line)
            if m:
                found[name].append(float(m.group(1)))
    return found


def epoch_lines(stdout: str) -> list[str]:
    """Log lines that must repeat exactly under one seed: all but times and speeds."""
    kept = []
    for line in stdout.splitlines():
        if line.startswith("[Epoch") and "time cost" not in line:
            kept.append(line)
        elif line.startswith("Epoch["):
            kept.append(re.sub(r"Speed: \S+", "Speed: -", line))
    return kept


def write_fake_cifar10(root: Path, per_file: int = 16) -> None:
    """CIFAR-10's python-pickle layout (random pixels): data_batch_1..5 and test_batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(),
                 b"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_file)]}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_config_declares_the_four_tasks_with_the_old_metric_set() -> None:
    for name, spec in TASKS.items():
        assert {m.name: m.compute_method for m in spec.metrics} == OLD_METRICS, name
        assert all(re.compile(m.pattern).groups == 1 for m in spec.metrics), name
        assert all(m.pattern.startswith("^") for m in spec.metrics), name
        placeholders = set(re.findall(r"\{(\w+)\}", spec.command))
        assert placeholders <= set(spec.params) | BUILTIN_PARAMS, name
        assert set(spec.params) <= placeholders, f"{name}: unused params"
    assert TASKS["digits_mlp"].num_gpus == 0
    assert TASKS["resnet50_cifar10"].num_gpus == 8
    assert TASKS["resnet50_cifar10_compiled"].num_gpus == 8
    assert "--compile" in TASKS["resnet50_cifar10_compiled"].command
    assert "--compile" not in TASKS["resnet50_cifar10"].command


# (model, dataset, TOML task whose patterns scrape it); covers every model and every dataset.
TOY_RUNS = [
    ("mlp", "cifar10", "digits_mlp"),
    ("cnn", "digits", "digits_mlp"),
    ("resnet18", "synthetic", "resnet18_cifar10"),
    ("resnet50", "synthetic", "resnet50_cifar10"),
]


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[str, tuple[subprocess.Popen[str], Path]]]:
    """Start the toy runs at once (their start-ups overlap on 2 cores); each test awaits its own."""
    root = tmp_path_factory.mktemp("toy")
    write_fake_cifar10(root / "data")
    extra = {"synthetic": ["--image-size", "8"], "digits": [],
             "cifar10": ["--data-dir", str(root / "data")]}  # the parent of cifar-10-batches-py
    runs = {}
    for model, dataset, _ in TOY_RUNS:
        summary = root / f"{model}.json"
        proc = start_script("--model", model, "--dataset", dataset, *extra[dataset], "--epochs",
                            "2", "--batches-per-epoch", "2", "--batch-size", "4",
                            "--log-interval", "1", summary=summary)
        runs[model] = (proc, summary)
    yield runs
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(("model", "dataset", "task"), TOY_RUNS)
def test_toy_run_logs_exactly_what_the_patterns_scrape(
    toy_runs: dict[str, tuple[subprocess.Popen[str], Path]], model: str, dataset: str, task: str
) -> None:
    proc, summary_path = toy_runs[model]
    done = finish(proc)
    summary = json.loads(summary_path.read_text())
    scraped = scrape(task, done.stdout)

    assert scraped["speed"] == [b["speed"] for b in summary["batches"]]
    assert len(scraped["speed"]) == 4  # two batches in each of two epochs
    epochs = summary["epochs"]
    assert scraped["training_accuracy"] == [e["training_accuracy"] for e in epochs]
    assert scraped["validation_accuracy"] == [e["validation_accuracy"] for e in epochs]
    assert scraped["training_time"] == [e["time_cost"] for e in epochs]  # not "total time cost"
    assert f"total time cost: {summary['total_time_cost']!r}" in done.stdout.splitlines()
    if dataset == "cifar10":
        assert (summary["run"]["train_images"], summary["run"]["val_images"]) == (80, 16)
        assert summary["run"]["image_shape"] == [3, 32, 32]


def test_same_seed_repeats_every_epoch_line_and_another_seed_does_not(tmp_path: Path) -> None:
    # CIFAR-format data, so that the per-batch augmentation has to repeat too.
    write_fake_cifar10(tmp_path, per_file=40)
    args = [sys.executable, str(SCRIPT), "--model", "cnn", "--dataset", "cifar10", "--data-dir",
            str(tmp_path), "--epochs", "2", "--batches-per-epoch", "6", "--batch-size", "16",
            "--log-interval", "3", "--threads", "1"]
    procs = [subprocess.Popen([*args, "--seed", seed], stdout=subprocess.PIPE, text=True, cwd=REPO)
             for seed in ("7", "7", "8")]
    outs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    first, again, other = (epoch_lines(o) for o in outs)
    assert len(first) == 2 * (2 + 3)  # per epoch: 2 Speed lines, accuracy, loss, validation
    assert first == again
    assert first != other


def test_two_gloo_processes_report_global_speed_and_train_like_one(tmp_path: Path) -> None:
    common = ["--model", "mlp", "--dataset", "synthetic", "--image-size", "8", "--epochs", "2",
              "--synthetic-samples", "1024", "--log-interval", "5"]
    ddp_json, one_json = tmp_path / "ddp.json", tmp_path / "one.json"
    # Under torchrun each worker has OMP_NUM_THREADS=1 already.
    ddp = subprocess.Popen([sys.executable, str(SCRIPT), *common, "--batch-size", "32",
                            "--num-procs", "2", "--summary-json", str(ddp_json)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                           env={**os.environ, "TMPDIR": str(tmp_path)})  # see torchelastic_*
    run_script(*common, "--batch-size", "64", summary=one_json)
    ddp_out, ddp_err = ddp.communicate(timeout=TIMEOUT_S)
    assert ddp.returncode == 0, ddp_err[-3000:]
    assert not list(tmp_path.glob("torchelastic_*"))  # torchrun's log folder is never left behind
    two, one = json.loads(ddp_json.read_text()), json.loads(one_json.read_text())

    assert two["run"]["world_size"] == 2 and two["run"]["global_batch_size"] == 64
    batch_lines = [ln for ln in ddp_out.splitlines() if ln.startswith("Epoch[")]
    assert len(batch_lines) == len(two["batches"])  # rank 0 alone prints
    # 16 global batches of 64 per epoch, lines at batches 4, 9, 14 and the last, 15.
    assert [b["samples"] for b in two["batches"]] == [5 * 64, 5 * 64, 5 * 64, 64] * 2
    assert all(b["speed"] == b["samples"] / b["seconds"] for b in two["batches"])
    # Averaged gradients of 2 x 32 images = the gradient of 64: the same training, up to rounding.
    for e2, e1 in zip(two["epochs"], one["epochs"], strict=True):
        assert e2["training_loss"] == pytest.approx(e1["training_loss"], rel=1e-4)
        assert abs(e2["training_accuracy"] - e1["training_accuracy"]) <= 2 / 1024
        assert abs(e2["validation_accuracy"] - e1["validation_accuracy"]) <= 2 / 204


def test_compile_trains_a_tiny_mlp(tmp_path: Path) -> None:
    # The one torch.compile test (inductor + gcc): ~10-20 s cold on 2 cores, a tiny model.
    summary_path = tmp_path / "summary.json"
    done = run_script("--model", "mlp", "--dataset", "synthetic", "--image-size", "4",
                      "--compile", "--epochs", "1", "--batches-per-epoch", "3", "--batch-size",
                      "8", "--log-interval", "1", "--warmup-batches", "1", summary=summary_path)
    summary = json.loads(summary_path.read_text())
    assert [b["batch"] for b in summary["batches"]] == [1, 2]  # batch 0 is the warm-up
    assert scrape("digits_mlp", done.stdout)["speed"] == [b["speed"] for b in summary["batches"]]


def test_missing_cifar10_files_is_one_line_error(tmp_path: Path) -> None:
    done = run_script("--model", "mlp", "--dataset", "cifar10", "--data-dir", str(tmp_path),
                      check=False)
    assert done.returncode == 2
    assert "data_batch_1" in done.stderr and "--dataset synthetic" in done.stderr
    assert "Traceback" not in done.stderr


def test_digits_mlp_task_through_the_driver_cli_reaches_95_percent(tmp_path: Path) -> None:
    # The task as users run it: its default parameters, through bench-driver on real processes.
    result = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "driver", "--config", str(TOML), "--task-name", "digits_mlp",
           "--output", str(result), "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    flat = json.loads(result.read_text())
    logged = scrape("digits_mlp", done.stdout)  # the driver echoes the task's output
    assert len(logged["validation_accuracy"]) == TASKS["digits_mlp"].params["epochs"]
    assert flat["digits_mlp.validation_accuracy"] == logged["validation_accuracy"][-1] >= 0.95
    assert flat["digits_mlp.training_time"] == pytest.approx(sum(logged["training_time"]))
    assert flat["digits_mlp.speed"] == pytest.approx(sum(logged["speed"]) / len(logged["speed"]))


@pytest.mark.parametrize("task", ["resnet18_cifar10", "resnet50_cifar10",
                                  "resnet50_cifar10_compiled"])
def test_cifar_task_toy_mode_through_the_driver_cli(task: str, tmp_path: Path) -> None:
    """Each CIFAR task as documented for a CPU: --num-gpus 0 and synthetic data, tiny sizes; the
    driver's result equals what the script logged."""
    result = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "driver", "--config", str(TOML), "--task-name", task,
           "--num-gpus", "0", "--set", "dataset=synthetic", "--set", "epochs=1",
           "--set", "batches_per_epoch=2", "--set", "batch_size=4", "--set", "log_interval=1",
           "--output", str(result), "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    flat = json.loads(result.read_text())
    logged = scrape(task, done.stdout)
    assert flat[f"{task}.training_accuracy"] == logged["training_accuracy"][-1]
    assert flat[f"{task}.validation_accuracy"] == logged["validation_accuracy"][-1]
    assert flat[f"{task}.training_time"] == pytest.approx(sum(logged["training_time"]))
    assert flat[f"{task}.speed"] == pytest.approx(sum(logged["speed"]) / len(logged["speed"]))
    assert flat[f"{task}.cpu_memory_usage"] > 100  # torch alone is far above that
