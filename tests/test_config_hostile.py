"""Hostile configurations through the real CLI: injection, escaping names, bad values.

Every bad input is exit 3 with a message naming file, task, key and value, and nothing started.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driver.config import load_config
from driver.errors import ConfigError

from test_command import HOSTILE

METHODS = {"last", "average"}
# Each placement writes the value it received into a file: plain<i>, double<i>, single<i>.
PLACED = "printf %s {{v{i}}} > plain{i}; printf %s \"{{v{i}}}\" > double{i}; " \
         "printf %s '{{v{i}}}' > single{i}"
TASK = """
[tasks.t]
command_to_execute = "touch STARTED; {command}"
{extra}
"""


def task_config(write_config, command: str = "true", extra: str = "") -> Path:
    return write_config(TASK.format(command=command.replace("\\", "\\\\").replace('"', '\\"'),
                                    extra=extra))


def refused(run, *parts: str) -> str:
    """Assert the CLI refused the config before starting anything; return its message."""
    assert run.returncode == 3, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr
    assert not (run.cwd / "STARTED").exists() and not (run.cwd / "bench-runs").exists()
    for part in parts:
        assert part in run.stderr, (part, run.stderr)
    return run.stderr


def test_set_values_reach_every_placement_exactly_and_run_nothing(write_config, cli, tmp_path):
    command = "; ".join(PLACED.format(i=i) for i in range(len(HOSTILE)))
    params = "\n".join(f'v{i} = "default"' for i in range(len(HOSTILE)))
    task_config(write_config, command, f"[tasks.t.params]\n{params}")
    sets = [arg for i, value in enumerate(HOSTILE) for arg in ("--set", f"v{i}={value}")]
    run = cli("--task-name", "t", "--quiet", *sets)
    assert run.returncode == 0, run.stderr
    for i, value in enumerate(HOSTILE):
        for placement in ("plain", "double", "single"):
            assert (tmp_path / f"{placement}{i}").read_text() == value, (placement, value)
    assert not (tmp_path / "PWNED").exists()


def test_builtin_run_dir_is_quoted_like_any_value(write_config, cli, tmp_path):
    runs = tmp_path / "it's \"$(touch PWNED)\" `touch PWNED` *"
    task_config(write_config, "printf %s {run_dir} > plain; printf %s \"{run_dir}\" > double; "
                              "printf %s '{run_dir}' > single")
    run = cli("--task-name", "t", "--quiet", "--runs-dir", str(runs))
    assert run.returncode == 0, run.stderr
    record = json.loads(next(runs.glob("t/*/record.json")).read_text())
    for placement in ("plain", "double", "single"):
        assert (tmp_path / placement).read_text() == record["run_dir"]
    assert str(runs) in record["run_dir"] and not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("command, why", [
    ("echo \"x=$(date) {v}\"", "a $(...) inside double quotes"),
    ("echo `date` {v}", "a backtick command substitution"),
    ("echo {v!r}", "conversions (!r) and format specs"),
    ("echo ok # {v}", "in a comment"),
])
def test_unsafe_placement_is_refused_before_start(write_config, cli, tmp_path, command, why):
    task_config(write_config, command, "[tasks.t.params]\nv = 'x'")
    refused(cli("--task-name", "t", "--set", "v=$(touch PWNED)"),
            "task_config.toml: [tasks.t] command_to_execute", why, "{v}")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("section, name", [
    ("tasks", "../../outside"), ("tasks", "/abs"), ("tasks", "a/b"), ("tasks", ".."),
    ("tasks", "."), ("tasks", "-rf"), ("tasks", ""), ("tasks", "x" * 201), ("tasks", "a b"),
    ("experiments", "../victim"), ("experiments", "/tmp/victim"), ("experiments", ".hidden"),
])
def test_names_that_could_leave_the_runs_directory_are_refused(write_config, cli, section, name):
    extra = f'[experiments.{json.dumps(name)}]\ntask = "t"' if section == "experiments" else ""
    write_config(f'[tasks.{json.dumps(name) if section == "tasks" else "t"}]\n'
                 f'command_to_execute = "touch STARTED"\n{extra}\n')
    flag = "--experiment" if section == "experiments" else "--task-name"
    message = refused(cli(f"{flag}={name}"), f"invalid {section[:-1]} name {name!r}", "rename it",
                      "letters, digits and _ . + -")
    assert "task_config.toml" in message


def test_safe_names_are_accepted(write_config):
    config = load_config(write_config('[tasks."resnet-50_v1.5+amp"]\ncommand_to_execute = "true"'
                                      '\n[experiments."sweep.1"]\ntask = "resnet-50_v1.5+amp"\n'))
    assert list(config.tasks) == ["resnet-50_v1.5+amp"] and list(config.experiments) == ["sweep.1"]


@pytest.mark.parametrize("extra, expected", [
    ('cwd = "missing"', ["cwd = 'missing'", "does not exist"]),
    ('cwd = "task_config.toml"', ["cwd = 'task_config.toml'", "is not a directory"]),
    ('cwd = "a\\u0000b"', ["cwd = 'a\\x00b'", "NUL"]),
    ('env = {"A=B" = "1"}', ["env: invalid variable name 'A=B'", "no '=' or NUL"]),
    ('env = {"" = "1"}', ["env: invalid variable name ''", "non-empty"]),
    ('env = {"A\\u0000" = "1"}', ["env: invalid variable name 'A\\x00'"]),
    ('env = {A = "x\\u0000y"}', ["env.A = 'x\\x00y'", "NUL"]),
    ('params = {v = "x\\u0000y"}', ["params.v = 'x\\x00y'", "NUL"]),
    ('params = {v = nan}', ["params.v = nan", "expected a finite number"]),
    ('timeout = nan', ["timeout = nan", "expected a finite number > 0"]),
    ('timeout = inf', ["timeout = inf", "leave it out for no limit"]),
    ('timeout = -inf', ["timeout = -inf", "expected a finite number > 0"]),
    ('timeout = 0.0', ["timeout = 0.0", "expected a finite number > 0"]),
    ('timeout = "10"', ["timeout = '10'", "expected a finite number > 0"]),
    ('workers = inf', ["workers = inf", "expected a whole number > 0"]),
    ('workers = 0', ["workers = 0", "expected a whole number > 0"]),
    ("patterns = ['(\\d{1,4294967295})']\nmetrics = ['m']\ncompute_method = ['last']",
     ["metric 'm' pattern", "OverflowError", "the regex engine rejects it"]),
    (f"patterns = ['{'(' * 3000}x{')' * 3000}']\nmetrics = ['m']\ncompute_method = ['last']",
     ["metric 'm' pattern", "RecursionError"]),
])
def test_bad_values_are_refused_before_start(write_config, cli, extra, expected):
    task_config(write_config, "true", extra)
    refused(cli("--task-name", "t"), "task_config.toml: [tasks.t]", *expected)


def test_nul_in_command_is_refused(write_config, cli):
    write_config('[tasks.t]\ncommand_to_execute = "touch STARTED; echo \\u0000"\n')
    refused(cli("--task-name", "t"), "[tasks.t] command_to_execute = 'touch STARTED; echo \\x00'",
            "NUL")


def test_nul_in_set_value_is_refused(write_config):
    config = load_config(task_config(write_config, "echo {v}", "[tasks.t.params]\nv = 'x'"))
    with pytest.raises(ConfigError, match=r"--set v = 'a\\x00b': holds a NUL"):
        config.task("t", METHODS, {"v": "a\0b"})


def test_config_file_not_utf8_too_deep_a_directory_or_unreadable(tmp_path, cli):
    (tmp_path / "latin1.toml").write_bytes(b'[tasks.t]\ncommand_to_execute = "caf\xe9"\n')
    refused(cli("--config", "latin1.toml", "--task-name", "t"),
            "latin1.toml: not UTF-8 text (line 2, column 26: byte b'\\xe9')", "save it as UTF-8")
    (tmp_path / "dir.toml").mkdir()
    refused(cli("--config", "dir.toml", "--task-name", "t"), "dir.toml: is a directory")
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000)
    refused(cli("--config", "deep.toml", "--task-name", "t"), "deep.toml: invalid TOML: arrays")
    (tmp_path / "file").write_text("")
    refused(cli("--config", "file/task_config.toml", "--task-name", "t"),
            "file/task_config.toml: cannot read the task config: Not a directory")
