"""End to end: the real CLI on real subprocesses, checking results, records and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, alive, script

LOG = (
    b"Epoch[0] Batch [0]\tSpeed: 100.5 samples/sec\taccuracy=0.5\n"
    b"Epoch[0] Batch [1]\tSpeed: 200.5 samples/sec\taccuracy=0.6\n"
    b"[Epoch 0] time cost: 1.5e+01\n"
    b"[Epoch 0] validation: accuracy=0.75\n"
    b"\xff\xfe invalid utf-8 here\n"
    b"[Epoch 1] time cost: 5\n"
    b"[Epoch 1] validation: accuracy=0.8\n"
    b"total time cost: 20\n"
)

CONFIG = """
[tasks.train]
command_to_execute = "{{python}} {printer} log.txt {{code}}"
patterns = ['Speed: (\\S+) samples', '^\\[Epoch \\d+\\] time cost: (\\S+)', 'validation: accuracy=(\\S+)', 'never=(\\S+)']
metrics = ['speed', 'training_time', 'validation_accuracy', 'absent']
compute_method = ['average', 'total', 'last', 'max']
optional_metrics = ['absent']
[tasks.train.params]
code = 0
"""


@pytest.fixture
def train(tmp_path: Path, write_config):
    (tmp_path / "log.txt").write_bytes(LOG)
    return write_config(CONFIG.format(printer=script("print_log.py")))


def test_known_log_gives_flat_result_and_record(train, cli):
    run = cli("--task-name", "train", "--framework", "torch", "--metrics-suffix", "daily")
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["torch.train.speed.daily"] == 150.5
    assert result["torch.train.training_time.daily"] == 20.0  # not 40: 'total time cost' excluded
    assert result["torch.train.validation_accuracy.daily"] == 0.8
    assert "torch.train.absent.daily" not in result
    assert result["torch.train.cpu_memory_usage.daily"] > 0  # accuracy: test_peak_memory_*
    record = run.record
    assert record["schema"] == "bench-driver/run-record" and record["schema_version"] == 2
    assert record["status"] == "ok" and record["exit_code"] == 0
    assert record["metrics"]["speed"]["matches"] == 2
    assert record["missing_metrics"] == ["absent"]
    assert record["environment"]["driver_version"]
    log = Path(record["run_dir"]) if Path(record["run_dir"]).is_absolute() else \
        run.cwd / record["run_dir"]
    assert (log / "output.log").read_bytes() == LOG
    assert "speed" in run.stderr and "invalid utf-8 here" in run.stdout


def test_rerun_never_appends_or_doubles(train, cli):
    first, second = cli("--task-name", "train"), cli("--task-name", "train")
    assert first.result == second.result or \
        first.result["train.training_time"] == second.result["train.training_time"] == 20.0
    logs = sorted(train.parent.glob("bench-runs/train/*/output.log"))
    assert len(logs) == 2 and all(p.read_bytes() == LOG for p in logs)


def test_failing_command_still_writes_what_it_scraped(train, cli):
    run = cli("--task-name", "train", "--set", "code=3")
    assert run.returncode == 4
    assert run.result["train.speed"] == 150.5
    assert run.record["status"] == "failed" and run.record["exit_code"] == 3
    assert "the command exited with code 3" in run.stderr


def test_missing_required_metric_names_it_and_keeps_the_rest(tmp_path, write_config, cli):
    write_config("""
        [tasks.t]
        command_to_execute = "echo speed: 5"
        patterns = ['speed: (\\S+)', 'loss: (\\S+)']
        metrics = ['speed', 'loss']
        compute_method = ['last', 'last']
    """)
    run = cli("--task-name", "t")
    assert run.returncode == 5
    assert run.result["t.speed"] == 5.0 and "t.loss" not in run.result
    assert "required metric(s) never matched: loss" in run.stderr


def test_config_error_exits_3_and_starts_nothing(tmp_path, write_config, cli):
    (tmp_path / "dlbenchmark_result.json").write_text('{"t.speed": 99}')
    write_config("""
        [tasks.t]
        command_to_execute = "touch started"
        patterns = ['speed: (\\S+']
        metrics = ['speed']
        compute_method = ['last']
    """)
    run = cli("--task-name", "t")
    assert run.returncode == 3
    assert "task_config.toml: [tasks.t] metric 'speed' pattern" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "started").exists()
    # nothing is removed before the configuration is validated (issue 11): the exit code says
    # the run never started; a run that starts removes the previous result first
    assert (tmp_path / "dlbenchmark_result.json").read_text() == '{"t.speed": 99}'


def test_old_flags_and_set_reach_the_command(tmp_path, write_config, cli):
    write_config("""
        [tasks.t]
        command_to_execute = "echo epochs: {epochs} seed: {seed} gpus: {num_gpus}"
        patterns = ['epochs: (\\S+)', 'seed: (\\S+)', 'gpus: (\\S+)']
        metrics = ['epochs', 'seed', 'gpus']
        compute_method = ['last', 'last', 'last']
        [tasks.t.params]
        epochs = 1
    """)
    run = cli("--task-name", "t", "--epochs", "7", "--seed", "3")
    assert run.returncode == 0, run.stderr
    assert run.result == {**run.result, "t.epochs": 7.0, "t.seed": 3.0, "t.gpus": 0.0}


def test_peak_memory_of_a_grandchild(tmp_path, write_config, cli):
    write_config(f"""
        [tasks.mem]
        command_to_execute = "{{python}} {script('hold_memory.py')} 200 0.5 --grandchild"
        patterns = ['speed: (\\S+)']
        metrics = ['speed']
        compute_method = ['last']
    """)
    run = cli("--task-name", "mem")
    assert run.returncode == 0, run.stderr
    assert 200 <= run.result["mem.cpu_memory_usage"] < 260
    assert run.record["memory"]["cpu_memory"]["kernel_maxrss_mib"] >= 200


STUBBORN = """
[tasks.stubborn]
command_to_execute = "{{python}} {stubborn} {{pidfile}} --double-fork"
patterns = ['value: (\\S+)']
metrics = ['value']
compute_method = ['last']
[tasks.stubborn.params]
pidfile = "pids.txt"
"""


def test_timeout_ends_the_whole_tree(tmp_path, write_config, cli):
    write_config(STUBBORN.format(stubborn=script("stubborn.py")))
    run = cli("--task-name", "stubborn", "--timeout", "2", "--kill-grace", "0.5")
    assert run.returncode == 6
    pids = [int(p) for p in (tmp_path / "pids.txt").read_text().split()]
    assert len(pids) == 2 and not any(alive(p) for p in pids)
    assert run.result["stubborn.value"] == 1.0
    assert run.record["status"] == "timeout" and "timed out after 2 s" in run.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_is_forwarded_tree_reaped_partial_result_written(tmp_path, write_config, sig, code):
    write_config(STUBBORN.format(stubborn=script("stubborn.py")))
    driver = subprocess.Popen(
        [sys.executable, "-m", "driver", "--task-name", "stubborn", "--kill-grace", "0.5"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert driver.stdout is not None
    for line in driver.stdout:  # wait until the whole tree exists
        if line.startswith(b"ready"):
            break
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=30)
    assert driver.returncode == code, err
    pids = [int(p) for p in (tmp_path / "pids.txt").read_text().split()]
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)  # a killed orphan may take a moment to be reaped
    assert not any(alive(p) for p in pids)
    result = json.loads((tmp_path / "dlbenchmark_result.json").read_text())
    assert result["stubborn.value"] == 1.0
    record = json.loads(next(tmp_path.glob("bench-runs/stubborn/*/record.json")).read_text())
    assert record["status"] == "interrupted" and record["signal"] == sig.name
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_list_check_and_python_m(train, cli):
    assert cli("list").stdout.split() == ["train"]
    assert "1 task(s) and 0 experiment(s) OK" in cli("check").stdout


def test_check_validates_experiments_too(train, cli):
    text = train.read_text() + "\n[experiments.sweep]\ntask = 'train'\n" \
        "[experiments.sweep.matrix]\ncod = [0, 1]\n"
    train.write_text(text)
    run = cli("check")
    assert run.returncode == 3
    assert "cod" in run.stderr and "did you mean 'code'" in run.stderr
    train.write_text(text.replace("cod = [0, 1]", "code = [0, 1]"))
    assert "1 task(s) and 1 experiment(s) OK" in cli("check").stdout


def test_a_command_that_closes_its_output_early_is_still_timed_and_waited_for(
        tmp_path, write_config, cli):
    write_config(f"""
        [tasks.quiet]
        command_to_execute = "{{python}} {script('close_stdout.py')} 30"
        patterns = ['value: (\\S+)']
        metrics = ['value']
        compute_method = ['last']
    """)
    run = cli("--task-name", "quiet", "--timeout", "1.5", "--kill-grace", "0.5")
    assert run.returncode == 6, run.stderr  # the timeout still applies after EOF
    assert run.result["quiet.value"] == 7.0


EXIT_WORK_PLUGIN = '''
import atexit, pathlib, threading, time

def bench_driver_configure(options, config):
    here = pathlib.Path.cwd()
    atexit.register(lambda: (here / "atexit-ran").write_text("yes"))
    def late():
        time.sleep(0.3)
        (here / "thread-ran").write_text("yes")
    threading.Thread(target=late).start()  # not a daemon: the exit waits for it
'''


def test_the_quick_exit_still_runs_what_plugins_left_for_the_exit(train, cli, tmp_path):
    """``bench-driver`` skips the interpreter's teardown only when nothing waits for it: an
    atexit callback or a running thread gets the normal exit."""
    (tmp_path / "exit_work").mkdir()
    (tmp_path / "exit_work" / "exit_work.py").write_text(EXIT_WORK_PLUGIN)
    run = cli("--task-name", "train", "--plugins-dir", "exit_work")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "atexit-ran").read_text() == "yes"
    assert (tmp_path / "thread-ran").read_text() == "yes"


def test_the_quick_exit_keeps_the_exit_code_and_every_line(tmp_path, write_config, cli):
    write_config('[tasks.fails]\ncommand_to_execute = "{python} -c \\"print(\'x\' * 70000); '
                 'raise SystemExit(3)\\""\npatterns = []\nmetrics = []\ncompute_method = []\n')
    run = cli("--task-name", "fails")
    assert run.returncode == 4, run.stderr  # the command failed
    assert run.stdout.count("x") == 70000  # the echo, flushed before the process ended
    assert "fails: failed" in run.stderr


F_GETPIPE_SZ = 1032  # Linux


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
def test_a_console_that_is_a_pipe_is_widened_so_the_echo_keeps_up(train, tmp_path):
    """``bench-driver ... | tee`` (CI): the echo's pipe gets 1 MiB, not the default 64 KiB, so a
    fast command's output reaches it in fewer hand-offs (benchmarks/scrape_throughput.py)."""
    import fcntl

    read_end, write_end = os.pipe()
    assert fcntl.fcntl(read_end, F_GETPIPE_SZ) == 64 << 10
    drained = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
    os.close(read_end)
    done = subprocess.run([sys.executable, "-m", "driver", "--task-name", "train"], cwd=tmp_path,
                          stdout=write_end, stderr=subprocess.PIPE, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert done.returncode == 0, done.stderr
        assert fcntl.fcntl(write_end, F_GETPIPE_SZ) == 1 << 20
    finally:
        os.close(write_end)
        drained.wait(timeout=30)
