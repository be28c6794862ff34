"""End to end, through the real CLI: stop signals, a SIGKILLed driver, and a control loop that
nothing blocks (a backtracking pattern, a console nobody reads, a closed console).

Bounds on time are generous (other jobs share these machines) yet missed by 10x or more by the old
behaviour, which waited on the regex or the console for as long as they took (minutes to hours
here). How long each scenario takes is printed by benchmarks/control_latency.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from conftest import REPO, alive, script

BOUND_S = 20.0  # the old behaviour: 300 s or more in every scenario below

VALUE = r"value: (\S+)"


def task(name: str, command: str, extra: str = "", patterns: tuple[str, ...] = (VALUE,),
         ) -> str:
    """A task_config.toml with one task: ``value`` from ``value: N`` (and more *patterns*,
    each an optional metric ``m1``, ``m2``...), *extra* lines at the end."""
    names = ["value"] + [f"m{i}" for i in range(1, len(patterns))]
    literals = ", ".join("'" + p + "'" for p in patterns)  # TOML literal strings: no escapes
    return (f'[tasks.{name}]\ncommand_to_execute = "{command}"\npatterns = [{literals}]\n'
            f"metrics = {names!r}\ncompute_method = {['last'] * len(names)!r}\n"
            f"optional_metrics = {names[1:]!r}\n{extra}")


STUBBORN = task("stubborn", f"{{python}} {script('stubborn.py')} pids.txt --double-fork")
PRINT = task("print", f"touch started; {{python}} {script('print_log.py')} log.txt")
BACKTRACK = task("backtrack", f"{{python}} {script('backtrack.py')} 40 300",
                 patterns=(VALUE, "^(a+)+$"))
FLOOD = task("flood", f"{{python}} {script('flood.py')} {{mib}} {{sleep}}",
             "[tasks.flood.params]\nmib = 8\nsleep = 300\n")


def start_driver(cwd: Path, *args: str, stdout: int | IO[bytes] = subprocess.PIPE,
                 ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "driver", *args], cwd=cwd, stdout=stdout,
        stderr=open(cwd / "stderr.txt", "wb"), env={**os.environ, "PYTHONPATH": str(REPO)})


def wait_for_line(driver: subprocess.Popen[bytes], start: bytes) -> None:
    assert driver.stdout is not None
    for line in driver.stdout:
        if line.startswith(start):
            return
    raise AssertionError(f"the driver never echoed {start!r}")


def finish(driver: subprocess.Popen[bytes], limit_s: float = BOUND_S) -> float:
    """Seconds the driver took to exit (it is SIGKILLed past *limit_s*, failing the test)."""
    t0 = time.monotonic()
    try:
        driver.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        driver.kill()
        driver.wait()
        raise AssertionError(f"the driver did not exit within {limit_s} s") from None
    return time.monotonic() - t0


def gone(pids: list[int], limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not any(alive(p) for p in pids)


def record(cwd: Path, task: str) -> dict:
    return json.loads(next((cwd / "bench-runs" / task).glob("*/record.json")).read_text())


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2])
def test_stop_signals_are_forwarded_tree_reaped_partial_result_written(tmp_path, write_config, sig):
    write_config(STUBBORN)
    driver = start_driver(tmp_path, "--task-name", "stubborn", "--kill-grace", "0.5")
    wait_for_line(driver, b"ready")
    driver.send_signal(sig)
    finish(driver)
    assert driver.returncode == 128 + sig, (tmp_path / "stderr.txt").read_text()
    assert gone([int(p) for p in (tmp_path / "pids.txt").read_text().split()], 5)
    assert json.loads((tmp_path / "dlbenchmark_result.json").read_text())["stubborn.value"] == 1
    assert record(tmp_path, "stubborn")["status"] == "interrupted"
    assert record(tmp_path, "stubborn")["signal"] == sig.name


def test_the_workload_dies_with_a_sigkilled_driver(tmp_path, write_config):
    write_config(STUBBORN)
    driver = start_driver(tmp_path, "--task-name", "stubborn")
    wait_for_line(driver, b"ready")  # the setsid grandchild exists and ignores SIGTERM
    pids = [int(p) for p in (tmp_path / "pids.txt").read_text().split()]
    driver.kill()
    finish(driver)
    assert gone(pids, 10), "the task's tree outlived the SIGKILLed driver"


def signalling_plugin(cwd: Path, hook: str, code: str) -> None:
    """The task ``print`` (printing ``value: 3``) and a drop-in plugin whose *hook* returns
    what *code* (after ``import os, signal``) defines as ``it``."""
    (cwd / "log.txt").write_text("value: 3\n")
    (cwd / "plugins").mkdir()
    (cwd / "plugins" / "signalling.py").write_text(
        "import os, signal\nfrom driver.hookspecs import hookimpl\n" + code +
        f"\n@hookimpl\ndef {hook}():\n    return {{'signalling': it}}\n")


def test_a_late_signal_still_leaves_complete_results(tmp_path, write_config, cli):
    write_config(PRINT)
    signalling_plugin(tmp_path, "bench_driver_register_reporters", (
        "class Late:\n"
        "    def report(self, record, settings):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # while the driver reports\n"
        "it = Late()"))
    run = cli("--task-name", "print", timeout=60)
    assert run.returncode >= 0, "the late SIGTERM killed the driver"
    assert run.result["print.value"] == 3.0 and run.record["status"] == "ok"


def test_a_signal_during_start_up_starts_nothing_and_records_it(tmp_path, write_config, cli):
    write_config(PRINT)
    signalling_plugin(tmp_path, "bench_driver_register_samplers", (
        "def it(settings):\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the run is being set up"))
    run = cli("--task-name", "print", timeout=60)
    assert run.returncode == 130, run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "started").exists()
    assert run.record["status"] == "interrupted" and run.record["signal"] == "SIGINT"


def test_the_timeout_acts_while_a_pattern_backtracks_for_hours(tmp_path, write_config):
    write_config(BACKTRACK)
    driver = start_driver(tmp_path, "--task-name", "backtrack", "--timeout", "1",
                          "--kill-grace", "0.5", stdout=subprocess.DEVNULL)
    finish(driver)
    assert driver.returncode == 6, (tmp_path / "stderr.txt").read_text()
    result = json.loads((tmp_path / "dlbenchmark_result.json").read_text())
    assert result["backtrack.value"] == 2.0  # the lines around the stuck one were scraped
    errors = record(tmp_path, "backtrack")["errors"]
    assert any("line at byte 9 was not scraped" in e for e in errors), errors


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_act_while_a_pattern_backtracks_for_hours(tmp_path, write_config, sig):
    write_config(BACKTRACK)
    driver = start_driver(tmp_path, "--task-name", "backtrack", "--kill-grace", "0.5")
    wait_for_line(driver, b"value: 2")  # the scraper is stuck on the line before
    driver.send_signal(sig)
    finish(driver)
    assert driver.returncode == 128 + sig, (tmp_path / "stderr.txt").read_text()
    assert record(tmp_path, "backtrack")["status"] == "interrupted"


def test_the_timeout_acts_while_nobody_reads_the_console(tmp_path, write_config):
    write_config(FLOOD)
    read_end, write_end = os.pipe()  # stdout is a pipe nobody reads
    try:
        driver = start_driver(tmp_path, "--task-name", "flood", "--timeout", "2",
                              "--kill-grace", "0.5", stdout=write_end)  # type: ignore[arg-type]
        os.close(write_end)
        finish(driver)
    finally:
        os.close(read_end)
    assert driver.returncode == 6, (tmp_path / "stderr.txt").read_text()
    log = next((tmp_path / "bench-runs" / "flood").glob("*/output.log")).read_bytes()
    lines = int(log.rsplit(b"done ", 1)[1])  # every byte is in the log: each line, the last
    assert log.count(b"\n") == lines + 1 and log.endswith(b"done %d\n" % lines)
    result = json.loads((tmp_path / "dlbenchmark_result.json").read_text())
    assert result["flood.value"] == lines - 1


def test_a_console_closed_early_does_not_change_the_exit_code(tmp_path, write_config):
    write_config(FLOOD.replace("sleep = 300", "sleep = 0").replace("mib = 8", "mib = 4"))
    driver = start_driver(tmp_path, "--task-name", "flood")  # as `bench-driver ... | head -1`
    assert driver.stdout is not None
    assert driver.stdout.readline().startswith(b"value: 0 ")
    driver.stdout.close()
    finish(driver)
    assert driver.returncode == 0, (tmp_path / "stderr.txt").read_text()
    assert json.loads((tmp_path / "dlbenchmark_result.json").read_text())["flood.value"] > 0
