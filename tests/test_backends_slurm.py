"""``--backend slurm`` through submitit: its local executor (real subprocesses, no Slurm), the
sbatch script a real cluster would get, and the refusals before anything starts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from test_backends import _job, records, toy  # noqa: F401  (toy: the fixture)

try:  # the README's test command installs it: a missing extra FAILS, it is never skipped
    import submitit  # noqa: F401
except ImportError:
    pytest.fail("the slurm extra is not installed: pip install -e '.[slurm]'", pytrace=False)


def test_an_experiment_through_submitit_gives_the_records_of_the_local_backend(toy, cli,
                                                                               tmp_path):
    toy()
    local = cli("--experiment", "exp", "--runs-dir", "local", "-j", "2", "--quiet")
    slurm = cli("--experiment", "exp", "--runs-dir", "slurm", "--backend", "slurm", "-j", "2",
                "--slurm-executor", "local", "--quiet", timeout=300)
    assert local.returncode == 0, local.stderr
    assert slurm.returncode == 0, slurm.stderr
    expected = records(tmp_path / "local")
    assert len(expected) == 4 and records(tmp_path / "slurm") == expected
    assert list((tmp_path / "slurm/.slurm").glob("*_result.pkl"))  # submitit's own files


def test_without_sbatch_slurm_is_refused_before_anything_runs(toy, cli, tmp_path):
    toy()
    bare = tmp_path / "bin"
    bare.mkdir()
    done = cli("--experiment", "exp", "--backend", "slurm", env={"PATH": str(bare)})
    assert done.returncode == 3, done.stderr
    assert "no sbatch/srun on PATH" in done.stderr and "--slurm-executor local" in done.stderr
    assert not (tmp_path / "events.log").exists() and not (tmp_path / "bench-runs/exp").exists()


def test_the_sbatch_script_asks_for_the_partition_time_cpus_and_gpus(tmp_path: Path):
    from plugins.backends.slurm import SlurmBackend, sbatch_script

    options = argparse.Namespace(
        slurm_partition="gpu", slurm_time_min=90.0, slurm_cpus_per_run=4,
        slurm_gpus_per_run=None, slurm_folder=tmp_path / "jobs", slurm_executor="slurm",
        runs_dir=tmp_path)
    script = sbatch_script(SlurmBackend(options, 2), _job(0, gpus=2))
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --job-name=bench-driver-t",
                 "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"):
        assert line in script.splitlines(), script
    assert str(tmp_path / "jobs") in script


@pytest.mark.parametrize("flag, value", [("--slurm-time-min", "0"),
                                         ("--slurm-cpus-per-run", "0")])
def test_bad_slurm_settings_are_refused(toy, cli, flag, value):
    toy()
    done = cli("--experiment", "exp", "--backend", "slurm", "--slurm-executor", "local", flag,
               value)
    assert done.returncode == 3 and "expected minutes > 0, CPUs >= 1" in done.stderr


EXPERIMENT_OPTIONS = """
[experiments.queued]
task = "toy"
repetitions = 2
[experiments.queued.options]
backend = "slurm"
slurm_executor = "local"
jobs = 2
slurm_time_min = 5
quiet = true
"""


def test_the_experiment_table_chooses_the_backend_and_the_command_line_wins(toy, cli, tmp_path):
    config = toy()
    config.write_text(config.read_text() + EXPERIMENT_OPTIONS)
    done = cli("--experiment", "queued", timeout=300)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "bench-runs/.slurm").glob("*_result.pkl"))  # through submitit
    assert "2/2 runs" in done.stderr and "speed: 100" not in done.stdout  # quiet = true
    overridden = cli("--experiment", "queued", "--slurm-time-min", "0")
    assert overridden.returncode == 3 and "--slurm-time-min 0" in overridden.stderr


def test_an_unknown_option_in_the_experiment_table_is_refused(toy, cli):
    config = toy()
    config.write_text(config.read_text() + EXPERIMENT_OPTIONS.replace("slurm_time_min",
                                                                      "slurm_time_mins"))
    done = cli("--experiment", "queued")
    assert done.returncode == 3, done.stderr
    assert "[experiments.queued.options]: 'slurm_time_mins' is not an option" in done.stderr
    assert "did you mean 'slurm_time_min'" in done.stderr


def test_a_job_that_dies_is_that_runs_failure_with_the_reason(toy, cli, tmp_path):
    toy()
    run = ("--experiment", "exp", "--backend", "slurm", "--slurm-executor", "local", "--quiet",
           "--set", "kill_at=1", "--set", "worker_marker=submitit", "--fix", "tag=a")
    failed = cli(*run, timeout=300)
    assert failed.returncode == 130, failed.stderr  # the run is incomplete
    record = (tmp_path / "bench-runs/exp/tag=a/1/record.json").read_text()
    assert '"status": "interrupted"' in record and "the Slurm job" in record, record
    again = cli(*run, timeout=300)
    assert again.returncode == 0, again.stderr  # reran on resume
