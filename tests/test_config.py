"""task_config.toml parsing and validation: every error names file, task, key and value."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from driver.config import load_config, parse_overrides
from driver.errors import ConfigError

METHODS = {"average", "last", "total", "max", "p90"}

GOOD = """
[defaults]
timeout = 60
[defaults.params]
batch = 32

[tasks.train]
command_to_execute = "python train.py --epochs {epochs} --batch {batch} --name {name}"
num_gpus = 2
patterns = ['Speed: (\\S+)', '^accuracy=(\\S+)']
metrics = ['speed', 'accuracy']
compute_method = ['average', 'last']
optional_metrics = ['accuracy']

[tasks.train.params]
epochs = 10
name = "run one"

[[tasks.train.metric]]
name = "loss"
pattern = 'loss=(?P<value>\\S+) \\((\\w+)\\)'
compute_method = "last"
unit = "nats"
direction = "lower"
"""


def task(write_config, text: str, name: str = "train", overrides=None):
    return load_config(write_config(text)).task(name, METHODS, overrides)


def error(write_config, text: str, name: str = "train", overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        task(write_config, text, name, overrides)
    return str(info.value)


def test_old_lists_and_per_metric_tables_and_defaults(write_config):
    spec = task(write_config, GOOD)
    assert [m.name for m in spec.metrics] == ["speed", "accuracy", "loss"]
    assert [m.compute_method for m in spec.metrics] == ["average", "last", "last"]
    assert [m.optional for m in spec.metrics] == [False, True, False]
    assert spec.metrics[2].unit == "nats" and spec.metrics[2].direction == "lower"
    assert spec.num_gpus == 2 and spec.timeout_s == 60.0
    assert spec.params == {"batch": 32, "epochs": 10, "name": "run one"}


def test_set_overrides_and_values_are_shell_quoted(write_config):
    spec = task(write_config, GOOD, overrides={"epochs": "2", "name": "x; rm -rf /"})
    command = spec.render_command({"python": "python"})
    assert shlex.split(command) == [
        "python", "train.py", "--epochs", "2", "--batch", "32", "--name", "x; rm -rf /"
    ]


def test_unknown_task_lists_tasks_and_suggests(write_config):
    message = error(write_config, GOOD, name="trian")
    assert "no task 'trian'" in message and "did you mean 'train'" in message
    assert "tasks: train" in message and "task_config.toml" in message


def test_unknown_key_suggests(write_config):
    message = error(write_config, GOOD.replace("num_gpus = 2", "num_gpu = 2"))
    assert "[tasks.train]" in message and "'num_gpu'" in message
    assert "did you mean 'num_gpus'" in message


def test_unequal_lists(write_config):
    message = error(write_config, GOOD.replace("metrics = ['speed', 'accuracy']",
                                               "metrics = ['speed']"))
    assert "patterns has 2, metrics has 1, compute_method has 2" in message


def test_invalid_regex_gives_position(write_config):
    message = error(write_config, GOOD.replace("'Speed: (\\S+)'", "'Speed: (\\S+'"))
    assert "metric 'speed' pattern 'Speed: (\\\\S+'" in message
    assert "invalid regex: missing ), unterminated subpattern at position 7" in message


@pytest.mark.parametrize("pattern, groups", [("'Speed: \\S+'", 0), ("'(a)(b)'", 2)])
def test_pattern_needs_one_group(write_config, pattern, groups):
    message = error(write_config, GOOD.replace("'Speed: (\\S+)'", pattern))
    assert f"has {groups} capture groups; it needs exactly one" in message
    assert "(?:...)" in message


def test_unknown_compute_method_suggests(write_config):
    message = error(write_config, GOOD.replace("['average', 'last']", "['averge', 'last']"))
    assert "unknown compute_method 'averge' (did you mean 'average'?)" in message
    assert "pNN" in message


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("num_gpus = 2", "num_gpus = 'two'", "num_gpus = 'two': expected a whole number >= 0"),
        ("num_gpus = 2", "num_gpus = -1", "num_gpus = -1: expected a whole number >= 0"),
        ("timeout = 60", "timeout = 0", "timeout = 0: expected a finite number > 0"),
        ("epochs = 10", "epochs = [1]", "params.epochs = [1]: expected a string, number"),
        ("unit = \"nats\"", "unit = 3", "unit = 3: expected a string"),
        ("direction = \"lower\"", "direction = \"down\"", "direction = 'down'"),
        ("patterns = [", "patterns = 3 #", "patterns = 3: expected a list of strings"),
    ],
)
def test_wrong_types(write_config, old, new, expected):
    text = GOOD.replace(old, new) if "patterns" not in old else \
        GOOD.replace("patterns = ['Speed: (\\S+)', '^accuracy=(\\S+)']", "patterns = 3")
    assert expected in error(write_config, text)


def test_unknown_parameter_in_command_and_literal_braces(write_config):
    message = error(write_config, GOOD.replace("--name {name}", "--name {nmae}"))
    assert "uses {nmae}, which is not a parameter (did you mean 'name'?)" in message
    spec = task(write_config, GOOD.replace("--name {name}", "| awk '{{print $1}}'"))
    assert spec.render_command({"python": "python"}).endswith("| awk '{print $1}'")


def test_set_of_unknown_parameter(write_config):
    message = error(write_config, GOOD, overrides={"epoch": "2"})
    assert "--set epoch=2" in message and "did you mean 'epochs'" in message


def test_parse_overrides():
    assert parse_overrides(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_overrides(["novalue"])


def test_bad_toml_and_missing_file(tmp_path: Path, write_config):
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write_config("[tasks.x\n"))
    with pytest.raises(ConfigError, match="no such task config"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="unknown top-level key 'task'"):
        load_config(write_config("[task.x]\ncommand_to_execute = 'true'\n"))


def test_builtin_parameter_cannot_be_redeclared(write_config):
    message = error(write_config, GOOD.replace("epochs = 10", "seed = 10"))
    assert "params.seed: 'seed' is a built-in parameter" in message


def test_extends_inherits_and_overrides(write_config):
    text = GOOD + """
[tasks.train_big]
extends = "train"
num_gpus = 8
[tasks.train_big.params]
batch = 256
"""
    spec = task(write_config, text, name="train_big")
    assert spec.num_gpus == 8 and spec.timeout_s == 60.0
    assert spec.params == {"batch": 256, "epochs": 10, "name": "run one"}
    assert [m.name for m in spec.metrics] == ["speed", "accuracy", "loss"]


def test_extends_unknown_or_cyclic(write_config):
    message = error(write_config, GOOD + "[tasks.b]\nextends = 'trian'\n", name="b")
    assert "[tasks.b] extends = 'trian': no such task (did you mean 'train'?)" in message
    cyclic = GOOD + "[tasks.a]\nextends = 'b'\n[tasks.b]\nextends = 'a'\n"
    assert "a cycle (a -> b -> a)" in error(write_config, cyclic, name="a")
