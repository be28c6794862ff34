"""``--backend ray`` against a real local Ray cluster, one for the whole test session (starting
Ray costs seconds and ~700 MiB): the records are those of the local backend."""

from __future__ import annotations

import pytest

from conftest import free_port
from test_backends import records, toy  # noqa: F401  (toy: the fixture)

try:  # the README's test command installs it: a missing extra FAILS, it is never skipped
    import ray  # noqa: F401
except ImportError:
    pytest.fail("the ray extra is not installed: pip install -e '.[ray]'", pytrace=False)

def test_an_experiment_through_ray_gives_the_records_of_the_local_backend(toy, cli, tmp_path,
                                                                          ray_address):
    toy()
    env = {"RAY_AUTH_MODE": "disabled"}
    local = cli("--experiment", "exp", "--runs-dir", "local", "-j", "2", "--quiet")
    remote = cli("--experiment", "exp", "--runs-dir", "ray", "--backend", "ray",  # all at once
                 "--address", ray_address, "--quiet", "--verbose", env=env, timeout=300)
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    expected = records(tmp_path / "local")
    assert len(expected) == 4 and records(tmp_path / "ray") == expected
    assert "[0/4 runs] started exp/tag=b repetition 1" in remote.stderr  # Ray queues them


def test_an_unreachable_address_is_refused_before_anything_runs(toy, cli, tmp_path):
    toy()
    done = cli("--experiment", "exp", "--backend", "ray", "--address", f"127.0.0.1:{free_port()}")
    assert done.returncode == 3, done.stderr
    assert "no Ray cluster answers there" in done.stderr and "ray start --head" in done.stderr
    assert not (tmp_path / "events.log").exists()


def test_a_ray_worker_that_dies_is_retried_by_the_stated_policy(toy, cli, tmp_path, ray_address):
    toy()
    run = ("--experiment", "exp", "--backend", "ray", "--address", ray_address, "--quiet",
           "--set", "kill_at=1", "--set", "worker_marker=ray::", "--fix", "tag=a")
    env = {"RAY_AUTH_MODE": "disabled"}
    failed = cli(*run, "--ray-retries", "0", env=env, timeout=300)
    assert failed.returncode == 130, failed.stderr  # the run is incomplete
    record = (tmp_path / "bench-runs/exp/tag=a/1/record.json").read_text()
    assert '"status": "interrupted"' in record and "the Ray task failed" in record
    (tmp_path / "killed-once").unlink()
    retried = cli(*run, "--ray-retries", "1", "--restart", env=env, timeout=300)
    assert retried.returncode == 0, retried.stderr  # killed once, then run again by Ray
    starts = [line for line in (tmp_path / "events.log").read_text().splitlines()
              if line.startswith("start a/1")]
    assert len(starts) == 3  # one attempt without retries, two with one retry
