"""``bench-driver datagen NAME run --backend local|ray|slurm``: each taskid stream one driver run,
through the real CLI on digits (2 streams x 2 samples); the stores hold exactly what the
in-process ``run`` gives, each stream has a run directory with its record, a later run continues
from the checkpoints, a failed stream is named, and a stop signal cancels the streams."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from plugins.datagen.store import EXACT_COLUMNS, store_path

PROFILE = """\
[datagen.toy]
streams = 2
samples = 2
mode = "toy"
data = "digits"
epochs = 2
channels = 4
cells_per_stage = 1
estimate_s_per_epoch = 0.5

[datagen.long]          # one model on a long schedule: time to stop it mid-stream
samples = 1
mode = "toy"
data = "digits"
epochs = 400
channels = 4
cells_per_stage = 1
"""


def _datagen(root: Path, *args: str, timeout: float = 300,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driver", "datagen", *args], cwd=root,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _initialised(root: Path) -> Path:
    """*root* with the config and the toy profile initialised; the profile's directory."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "task_config.toml").write_text(PROFILE)
    done = _datagen(root, "toy", "init")
    assert done.returncode == 0, done.stderr
    return root / "datagen" / "toy"


def _exact(directory: Path, taskid: int, up_to_epoch: int) -> list[tuple]:
    with closing(sqlite3.connect(store_path(directory, taskid))) as db:
        return db.execute(f"SELECT taskid, model_idx, dataset, epoch, {', '.join(EXACT_COLUMNS)}"
                          f" FROM epochs WHERE taskid=? AND epoch<=? ORDER BY model_idx, epoch",
                          (taskid, up_to_epoch)).fetchall()


def _records(directory: Path) -> dict[str, dict]:
    """The stream runs' records, by ``STAMP/NNNN`` (NNNN: the taskid)."""
    return {str(p.parent.relative_to(directory / "runs")): json.loads(p.read_text())
            for p in sorted((directory / "runs").glob("*/*/record.json"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy profile trained in-process (no backend) to epoch 2: the values to match."""
    directory = _initialised(tmp_path_factory.mktemp("in-process"))
    done = _datagen(directory.parent.parent, "toy", "run", "--epochs", "2")
    assert done.returncode == 0, done.stderr
    assert "datagen toy: 8 epoch(s) trained" in done.stdout.splitlines()
    return directory


def test_local_streams_store_the_in_process_values_and_continue(reference: Path,
                                                                tmp_path: Path) -> None:
    directory = _initialised(tmp_path)
    first = _datagen(tmp_path, "toy", "run", "--epochs", "1", "--backend", "local", "-j", "2")
    assert first.returncode == 0, first.stderr
    assert f"2 stream(s) on the local backend, 2 at once, runs in {directory / 'runs'}/" in \
        first.stdout
    for taskid in (0, 1):
        assert _exact(directory, taskid, 2) == _exact(reference, taskid, 1) != []
        assert f"datagen toy: taskid {taskid}: 2 epoch(s) trained at " in first.stdout
    records = _records(directory)
    assert sorted(name[-4:] for name in records) == ["0000", "0001"]
    assert all(r["status"] == "ok" and r["metrics"]["epochs_trained"]["value"] == 2
               for r in records.values())

    second = _datagen(tmp_path, "toy", "run", "--epochs", "2", "--jobs", "2")  # -j: local
    assert second.returncode == 0, second.stderr
    for taskid in (0, 1):
        assert _exact(directory, taskid, 2) == _exact(reference, taskid, 2)
    logs = [(directory / "runs" / name / "output.log").read_text()
            for name in _records(directory) if name not in records]
    assert len(logs) == 2 and all("epoch=2/2" in log and "epoch=1/2" not in log for log in logs)
    assert "0 epochs left to reach epoch 2" in second.stdout.splitlines()[-1]


def test_a_stream_through_submitit_stores_the_in_process_values(reference: Path,
                                                                tmp_path: Path) -> None:
    directory = _initialised(tmp_path)
    done = _datagen(tmp_path, "toy", "run", "--epochs", "1", "--taskids", "1",
                    "--backend", "slurm", "--backend-args=--slurm-executor local")
    assert done.returncode == 0, done.stderr
    assert _exact(directory, 1, 2) == _exact(reference, 1, 1) != []
    assert not store_path(directory, 0).exists()  # only the chosen taskid ran
    (name, record), = _records(directory).items()
    assert name.endswith("/0001") and record["status"] == "ok"
    assert list((directory / "runs").glob("*/.slurm/*_result.pkl"))  # submitit's own files


def test_a_stream_through_a_real_ray_cluster(reference: Path, tmp_path: Path,
                                             ray_address: str) -> None:
    directory = _initialised(tmp_path)
    done = _datagen(tmp_path, "toy", "run", "--epochs", "1", "--taskids", "0", "--backend",
                    "ray", f"--backend-args=--address {ray_address}",
                    env={"RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr
    assert _exact(directory, 0, 2) == _exact(reference, 0, 1) != []
    assert [r["status"] for r in _records(directory).values()] == ["ok"]


def test_a_failed_stream_is_named_and_the_others_are_kept(reference: Path,
                                                          tmp_path: Path) -> None:
    directory = _initialised(tmp_path)
    samples = json.loads((directory / "samples.json").read_text())
    samples[-1]["config"] = "not-an-arch"  # taskid 1, model_idx 1: a stream that cannot train
    (directory / "samples.json").write_text(json.dumps(samples))
    done = _datagen(tmp_path, "toy", "run", "--epochs", "1", "--backend", "local", "-j", "2")
    assert done.returncode == 4, done.stderr  # ExitCode.COMMAND_FAILED
    assert "datagen toy: 1 of 2 stream(s) failed: taskid 1: " in done.stderr
    assert "'not-an-arch' (taskid 1, model_idx 1) is not a NAS-Bench-201 arch" in done.stderr
    log = done.stderr.split("(log: ")[1].split(")")[0]
    assert Path(log).parent.name == "0001" and "not-an-arch" in Path(log).read_text()
    assert _exact(directory, 0, 2) == _exact(reference, 0, 1)  # the other stream: all done
    assert _exact(directory, 1, 2) == _exact(reference, 1, 1)[:1]  # model 0 of taskid 1 kept


@pytest.mark.parametrize(("args", "message"), [
    (("--backend", "lcoal"), "--backend 'lcoal': no such backend (did you mean 'local'?)"),
    (("--backend", "local", "--workers", "2"), "with a backend the streams in flight are --jobs"),
    (("-j", "2", "--emit-slurm", "slurm"), "--emit-slurm writes job scripts instead of running"),
    (("--backend-args=--ray-retries x",), "give --backend NAME"),
    (("--backend", "ray", "--backend-args=--ray-retries x"), "invalid int value: 'x'"),
    (("--backend", "slurm", "--backend-args=--slurm-nodes 2"), "unknown option(s) --slurm-nodes"),
    (("--backend", "local", "-j", "0"), "--jobs 0: expected a whole number"),
])
def test_bad_backend_options_are_refused_before_any_stream_runs(args: tuple[str, ...],
                                                                message: str,
                                                                tmp_path: Path) -> None:
    directory = _initialised(tmp_path)
    done = _datagen(tmp_path, "toy", "run", "--epochs", "1", *args)
    assert done.returncode == 3 and message in done.stderr, done.stderr
    assert not (directory / "store").exists() and not list(directory.glob("runs/*"))


def test_a_stop_signal_cancels_the_streams_and_keeps_their_epochs(tmp_path: Path) -> None:
    (tmp_path / "task_config.toml").write_text(PROFILE)
    assert _datagen(tmp_path, "long", "init").returncode == 0
    directory = tmp_path / "datagen" / "long"
    proc = subprocess.Popen([sys.executable, "-m", "driver", "datagen", "long", "run", "--epochs",
                             "400", "--backend", "local"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _stored_epochs(directory):  # the stream has stored an epoch: stop it now
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "SIGINT: the streams in flight were cancelled; each keeps the epochs" in stderr
    (record,) = _records(directory).values()
    assert record["status"] == "interrupted"
    kept = _stored_epochs(directory)
    assert 1 <= kept < 400
    with closing(sqlite3.connect(store_path(directory, 0))) as db:  # the state to continue
        assert db.execute("SELECT epoch FROM checkpoints").fetchall() == [(kept,)]


def _stored_epochs(directory: Path) -> int:
    if not store_path(directory, 0).exists():
        return 0
    with closing(sqlite3.connect(store_path(directory, 0), timeout=60)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM epochs").fetchone()[0])
        except sqlite3.OperationalError:  # the stream is creating its tables
            return 0


GPU_PROFILE = PROFILE.replace('[datagen.long]', 'device = "cuda"\n\n[datagen.long]')


def test_a_cuda_stream_asks_slurm_for_a_gpu_and_the_local_pool_for_one_each(
        tmp_path: Path) -> None:
    from plugins.backends.slurm import SlurmBackend, sbatch_script
    from driver.search_backend import backend_options

    job = _job_of(tmp_path, GPU_PROFILE, taskid=1)
    assert job.gpus == 1 and job.key == str(tmp_path / "runs" / "0001")
    assert "--epochs 2 --taskids 1" in job.task.render_command({"python": "python"})
    options = backend_options("--slurm-partition gpu --slurm-time-min 240", _plugins())
    options.runs_dir = tmp_path
    script = sbatch_script(SlurmBackend(options, 2), job).splitlines()
    assert {"#SBATCH --gpus-per-node=1", "#SBATCH --partition=gpu",
            "#SBATCH --time=240"} <= set(script)

    assert _datagen(tmp_path, "toy", "init").returncode == 0  # the GPU profile _job_of wrote
    done = _datagen(tmp_path, "toy", "run", "--epochs", "1", "--backend", "local", "-j", "2",
                    env={"CUDA_VISIBLE_DEVICES": "GPU-00000000-0000-0000-0000-000000000000"})
    assert done.returncode == 3 and "2 stream(s) in flight need 2 GPU(s)" in done.stderr, \
        done.stderr
    assert not list((tmp_path / "datagen" / "toy").glob("runs/*"))


@pytest.mark.parametrize(("backend_args", "expected"), [
    ("", {"#SBATCH --time=75", "#SBATCH --cpus-per-task=4", "#SBATCH --partition=long"}),
    ("--slurm-time-min 240 --slurm-cpus-per-run 2 --slurm-partition gpu",
     {"#SBATCH --time=240", "#SBATCH --cpus-per-task=2", "#SBATCH --partition=gpu"}),
])
def test_slurm_streams_take_the_profiles_settings_unless_given(backend_args: str,
                                                               expected: set[str],
                                                               tmp_path: Path) -> None:
    from plugins.backends.slurm import SlurmBackend, sbatch_script
    from driver.search_backend import backend_options
    from plugins.datagen.backend import slurm_defaults
    from plugins.datagen.plan import Remaining
    from plugins.datagen.profile import parse_profile

    profile = parse_profile("toy", {"cpus_per_job": 4, "partition": "long", "mode": "toy"},
                            tmp_path)
    left = [Remaining(0, 10, 1000.0), Remaining(1, 30, 3000.0)]  # the longest: 1.5 x 3000 s
    options = backend_options(backend_args, _plugins(), slurm_defaults(profile, left))
    options.runs_dir = tmp_path
    script = sbatch_script(SlurmBackend(options, 2), _job_of(tmp_path, PROFILE, taskid=0))
    assert expected <= set(script.splitlines()), script


def _plugins():  # type: ignore[no-untyped-def]
    from driver.plugins import load_plugins

    return load_plugins(autoload=False)


def _job_of(tmp_path: Path, profile_text: str, taskid: int):  # type: ignore[no-untyped-def]
    """The job of stream *taskid* of profile ``toy`` in *profile_text*, trained to epoch 2."""
    from driver.config import load_config
    from driver.search_backend import backend_options
    from plugins.datagen.backend import stream_runs
    from plugins.datagen.profile import profile_named

    plugins = _plugins()
    path = tmp_path / "task_config.toml"
    path.write_text(profile_text)
    config = load_config(path, plugins.registry("config_tables"))
    options = backend_options("", plugins)
    options.runs_dir = tmp_path / "runs"
    runs = stream_runs(profile_named(config.tables, path, "toy"), config, 2, plugins, options)
    return runs.job_for(_trial(taskid))


def _trial(taskid: int):  # type: ignore[no-untyped-def]
    from driver.search import Trial

    return Trial(taskid, taskid)
