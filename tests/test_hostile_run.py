"""Hostile runs through the real CLI (issue 11): outputs that must not be destroyed, numbers that
overflow, flags that are not numbers, resumes that would mix configurations, compare input that
must never pass, plugins that clash, console markup, and experiments that touch nothing else."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, install_plugin_distribution

ECHO = """
    [tasks.t]
    command_to_execute = "printf 'v=%s\\\\n' {values}"
    patterns = ['^v=(\\S+)']
    metrics = ['v']
    compute_method = ['{method}']
    [tasks.t.params]
    values = "1"
"""


def scraped(result: dict) -> dict:
    """The scraped metrics of a flat result: a run the sampler caught (a loaded machine) also
    has cpu_memory_usage figures, one that ended first has none."""
    return {k: v for k, v in result.items() if "memory_usage" not in k}


def config(write_config, method: str = "last", values: str = "1 2") -> Path:
    return write_config(ECHO.format(method=method, values=values))


# --- 1. never destroy what is not ours ----------------------------------------------------------


def test_output_that_is_the_config_is_refused_and_the_config_survives(write_config, cli,
                                                                       tmp_path):
    path = config(write_config)
    before = path.read_text()
    run = cli("--task-name", "t", "--output", "task_config.toml")
    assert run.returncode == 3
    assert "is not a previous flat result" in run.stderr and "refusing to replace it" in run.stderr
    assert path.read_text() == before and not (tmp_path / "bench-runs").exists()


def test_output_directory_is_refused(write_config, cli, tmp_path):
    config(write_config)
    (tmp_path / "out").mkdir()
    run = cli("--task-name", "t", "--output", "out")
    assert run.returncode == 3 and "is a directory" in run.stderr


def test_output_fifo_and_device_are_written_through_never_replaced(write_config, cli, tmp_path):
    config(write_config)
    fifo = tmp_path / "result.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    run = cli("--task-name", "t", "--output", str(fifo))
    assert run.returncode == 0, run.stderr
    assert scraped(json.loads(reader.communicate(timeout=30)[0])) == {"t.v": 2.0}
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    run = cli("--task-name", "t", "--output", "/dev/null")
    assert run.returncode == 0, run.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device, even for root


def test_output_symlink_is_followed_and_kept(write_config, cli, tmp_path):
    config(write_config)
    (tmp_path / "real.json").write_text('{"old": 1}')
    (tmp_path / "link.json").symlink_to("real.json")
    run = cli("--task-name", "t", "--output", "link.json")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "link.json").is_symlink()
    assert scraped(json.loads((tmp_path / "real.json").read_text())) == {"t.v": 2.0}


def test_an_experiment_never_touches_the_flat_result(write_config, cli, tmp_path):
    write_config(ECHO.format(method="last", values="{values}") + textwrap.dedent("""
        [experiments.e]
        task = "t"
        matrix = { values = ["1", "2"] }
    """))
    (tmp_path / "dlbenchmark_result.json").write_text('{"kept": 1}')
    run = cli("experiment", "e")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "dlbenchmark_result.json").read_text() == '{"kept": 1}'
    assert scraped(json.loads((tmp_path / "bench-runs/e/values=2/result.json").read_text())) == \
        {"t.v": 2.0}


def test_an_interrupted_set_says_the_truth_about_resuming(write_config, cli, tmp_path):
    write_config("""
        [tasks.t]
        command_to_execute = "echo v=1; if test {repetition} = 1; then kill -TERM $PPID; sleep 5; fi"
        patterns = ['^v=(\\S+)']
        metrics = ['v']
        compute_method = ['last']
    """)
    run = cli("--task-name", "t", "--repetitions", "3")
    assert run.returncode == 143, run.stderr
    assert "run it again to resume" not in run.stderr
    assert "the set is incomplete; its finished runs are kept in" in run.stderr
    assert "a new invocation starts a new set" in run.stderr


def test_run_dir_parameter_is_absolute(write_config, cli, tmp_path):
    write_config("""
        [tasks.t]
        command_to_execute = "echo dir={run_dir} n=1"
        cwd = "sub"
        patterns = ['n=(\\S+)']
        metrics = ['n']
        compute_method = ['count']
    """)
    (tmp_path / "sub").mkdir()
    assert cli("--task-name", "t").returncode == 0
    log = next(tmp_path.glob("bench-runs/t/*/output.log")).read_text()
    path = Path(log.split("dir=")[1].split(" n=")[0])
    assert path.is_absolute() and (path / "record.json").is_file()


# --- 6. numbers never crash a run ---------------------------------------------------------------


@pytest.mark.parametrize("method, expected", [("average", 1e308), ("p50", 1e308),
                                              ("median", 1e308), ("max", 1e308)])
def test_huge_values_reduce_without_overflow(method, expected, write_config, cli):
    config(write_config, method, "1e308 1e308")
    run = cli("--task-name", "t")
    assert run.returncode == 0, run.stderr
    assert run.result["t.v"] == expected


def test_a_reduction_that_overflows_is_missing_with_the_reason(write_config, cli):
    config(write_config, "total", "1e308 1e308")
    run = cli("--task-name", "t")
    assert run.returncode == 5 and "Traceback" not in run.stderr
    assert "t.v" not in run.result
    assert run.record["metrics"]["v"]["error"].startswith("overflow")
    assert run.record["status"] == "missing_metrics"
    config(write_config, "p50", "1.7e308 -1.7e308")
    assert cli("--task-name", "t").result["t.v"] == 0.0  # the range overflows, the median not


def test_repetitions_whose_statistic_overflows_leave_it_out(write_config, cli, tmp_path):
    write_config("""
        [tasks.t]
        command_to_execute = "echo v={{sign}}1.7e308"
        patterns = ['^v=(\\S+)']
        metrics = ['v']
        compute_method = ['last']
        [tasks.t.params]
        sign = ""
    """.replace("{{sign}}", "$(test {repetition} = 1 && echo -)"))
    run = cli("--task-name", "t", "--repetitions", "2", "--statistic", "mean")
    assert run.returncode == 0, run.stderr  # the mean of +-1.7e308 is 0: no overflow
    assert run.result["t.v"] == 0.0
    summary = json.loads(next(tmp_path.glob("bench-runs/t/*/summary.json")).read_text())
    assert summary["metrics"]["v"]["std"] is None
    assert summary["metrics"]["v"]["error"] == "overflow: std"


# --- 7. flags that are not numbers or paths that cannot be written ------------------------------


@pytest.mark.parametrize("flag, value", [("--timeout", "nan"), ("--timeout", "inf"),
                                         ("--timeout", "0"), ("--sample-interval", "nan"),
                                         ("--kill-grace", "nan"), ("--kill-grace", "-1"),
                                         ("--kill-grace", "inf")])
def test_numeric_flags_must_be_finite(flag, value, write_config, cli, tmp_path):
    config(write_config)
    run = cli("--task-name", "t", flag, value)
    assert run.returncode == 3 and flag in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "bench-runs").exists()


@pytest.mark.parametrize("flag", ["--runs-dir", "--junit", "--markdown", "--output"])
def test_paths_that_cannot_be_written_are_refused_before_start(flag, write_config, cli,
                                                                tmp_path):
    config(write_config)
    (tmp_path / "afile").write_text("x")
    run = cli("--task-name", "t", flag, "afile/below")
    assert run.returncode == 3 and flag in run.stderr and "is not a directory" in run.stderr
    assert not (tmp_path / "bench-runs").exists()


# --- 8. resume refuses any change of what a set measures ----------------------------------------

RESUMED = """
    [tasks.t]
    command_to_execute = "echo v={repetition}{extra}"
    patterns = ['^v=(\\d+)']
    metrics = ['v']
    compute_method = ['{method}']
    [tasks.t.params]
    extra = "0"
    [experiments.e]
    task = "t"
    repetitions = 2
"""


@pytest.mark.parametrize("change, what", [
    ({"method": "max"}, "metric 'v' compute_method: recorded 'last', now 'max'"),
    ({"args": ["--num-gpus", "1", "--no-gpu-sampling"]}, "num_gpus: recorded 0, now 1"),
    ({"args": ["--set", "extra=5"]}, "parameter extra: recorded '0', now '5'"),
])
def test_resume_refuses_a_changed_measurement(change, what, write_config, cli, tmp_path):
    write_config(RESUMED.replace("{method}", "last"))
    assert cli("experiment", "e").returncode == 0
    write_config(RESUMED.replace("{method}", change.get("method", "last")))
    run = cli("experiment", "e", *change.get("args", []))
    assert run.returncode == 3, run.stderr
    assert what in run.stderr and "--restart" in run.stderr


# --- 9. compare cannot be bypassed --------------------------------------------------------------


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_compare_refuses_non_finite_values(bad, cli, tmp_path):
    (tmp_path / "a.json").write_text('{"t.speed": 100}')
    (tmp_path / "b.json").write_text('{"t.speed": %s}' % bad)
    for first, second in (("a.json", "b.json"), ("b.json", "a.json")):
        run = cli("compare", first, second)
        assert run.returncode == 3, (bad, run.stdout, run.stderr)
        assert "b.json" in run.stderr and "Traceback" not in run.stderr


def test_compare_refuses_incomplete_documents(cli, tmp_path):
    (tmp_path / "a.json").write_text('{"t.speed": 100}')
    (tmp_path / "b.json").write_text('{"schema": "bench-driver/summary", "schema_version": 2}')
    run = cli("compare", "a.json", "b.json")
    assert run.returncode == 3 and "incomplete or malformed" in run.stderr


def test_compare_writing_failures_are_warnings_that_keep_the_verdict(cli, tmp_path):
    (tmp_path / "a.json").write_text('{"t.speed": 100}')
    (tmp_path / "b.json").write_text('{"t.speed": 50}')
    step = tmp_path / "step_dir"
    step.mkdir()  # a directory: appending the step summary fails
    run = cli("compare", "a.json", "b.json", env={"GITHUB_STEP_SUMMARY": str(step)})
    assert run.returncode == 8, run.stderr
    assert "warning" in run.stderr and "cannot append" in run.stderr


# --- 11. plugins --------------------------------------------------------------------------------


def _install(tmp_path: Path, dist: str, module: str) -> Path:
    return install_plugin_distribution(tmp_path, dist, "1.0", module, "clash", (
        "def bench_driver_register_compute_methods():\n"
        f"    return {{'{module}': lambda v, c: 1.0}}\n"))


def test_two_distributions_claiming_one_entry_point_name_is_an_error_naming_both(
        tmp_path, write_config):
    config(write_config)
    _install(tmp_path, "bd-one", "bd_one")
    site = _install(tmp_path, "bd-two", "bd_two")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    env.pop("BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD")
    run = subprocess.run([sys.executable, "-m", "driver", "--task-name", "t"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 7, run.stderr
    assert "entry point 'clash' is claimed by two distributions" in run.stderr
    assert "bd-one" in run.stderr and "bd-two" in run.stderr


# --- 12. console output -------------------------------------------------------------------------


def test_markup_in_names_and_log_text_is_printed_literally_on_a_terminal(write_config, tmp_path):
    import pty

    write_config("""
        [tasks.tmark]
        command_to_execute = "echo 'v=[/]bold'"
        patterns = ['^v=(\\S+)']
        metrics = ['v']
        compute_method = ['last']
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "driver", "--task-name", "tmark"],
                            cwd=tmp_path, env=env, stdin=child, stdout=child, stderr=child)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 5, out.decode(errors="replace")  # 'v' never parses
    text = out.decode(errors="replace")
    assert "[/]bold" in text and "MarkupError" not in text and "Traceback" not in text


# --- 10. a full disk under --runs-dir -----------------------------------------------------------


def test_a_full_runs_dir_is_a_storage_error_and_the_flat_result_is_still_written(
        write_config, tmp_path):
    """--runs-dir on a 300 KiB tmpfs (mounted in a user and mount namespace of the test's own:
    util-linux `unshare`, no root needed) that the task's output fills."""
    write_config("""
        [tasks.t]
        command_to_execute = "{python} -c \\"[print('v=%d ' % i + 'x' * 100) for i in range(20000)]\\""
        patterns = ['^v=(\\d+)']
        metrics = ['v']
        compute_method = ['count']
    """)
    (tmp_path / "runs").mkdir()
    script = (f"mount -t tmpfs -o size=300k tmpfs runs && {sys.executable} -m driver "
              f"--task-name t --runs-dir runs --quiet; code=$?; cp runs/t/*/record.json "
              f"record-copy.json 2>/dev/null; exit $code")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stderr  # not 1, and not the command's own failure
    assert "Traceback" not in run.stderr
    assert "writing output.log failed: No space left on device" in run.stderr
    flat = json.loads((tmp_path / "dlbenchmark_result.json").read_text())
    assert flat["t.v"] > 0  # what was scraped before the disk filled
