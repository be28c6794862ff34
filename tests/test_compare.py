"""compare: directions, thresholds, significance, verdicts, and exit codes through the CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from driver.experiments.compare import (CompareOptions, Sample, compare, default_direction, load_side,
                            matches, parse_directions, parse_thresholds)
from driver.errors import ConfigError


def one(value: float, metric: str | None = None, direction: str | None = None) -> Sample:
    return Sample(value, (value,), metric, direction)


def many(*values: float, direction: str | None = None) -> Sample:
    ordered = sorted(values)
    return Sample(ordered[len(ordered) // 2], tuple(values), None, direction)


def verdicts(baseline, new, *thresholds, directions=(), metrics=()):
    options = CompareOptions(parse_thresholds(list(thresholds)), parse_directions(list(directions)),
                             tuple(metrics))
    return {v.key: v.verdict for v in compare(baseline, new, options)}


@pytest.mark.parametrize("name, direction", [
    ("speed", "higher"), ("validation_accuracy", "higher"), ("best_valid_acc", "higher"),
    ("training_time", "lower"), ("gpu_memory_usage_max", "lower"), ("loss", "lower"),
    ("simulated_time_s", "lower"), ("evaluations", None), ("accumulated", None),
])
def test_default_direction_by_name(name, direction):
    assert default_direction(name) == direction


def test_thresholds_relative_absolute_and_per_metric():
    found = parse_thresholds(["2%", "loss=0.01", "speed=10%"])
    assert str(found[""]) == "2%" and found[""].allowed(200.0) == 4.0
    assert not found["loss"].relative and found["loss"].allowed(5.0) == 0.01
    assert str(parse_thresholds([])[""]) == "5%"  # the default
    for bad in ("-5%", "fast", "x=", "speed=nan"):
        with pytest.raises(ConfigError, match="--threshold"):
            parse_thresholds([bad])
    with pytest.raises(ConfigError, match="METRIC=higher or METRIC=lower"):
        parse_directions(["speed=up"])


def test_option_names_match_keys_by_dotted_parts():
    assert matches("speed", "mxnet.resnet.speed.daily", None)
    assert matches("resnet.speed", "mxnet.resnet.speed.daily", None)
    assert not matches("spee", "mxnet.resnet.speed.daily", None)
    assert matches("acc", "v=1/task.best", Sample(1, (1,), "acc"))


def test_single_values_against_thresholds():
    base = {"t.speed": one(100), "t.training_time": one(10), "t.loss": one(0.5)}
    new = {"t.speed": one(94), "t.training_time": one(9), "t.loss": one(0.52)}
    assert verdicts(base, new) == {"t.speed": "regression", "t.training_time": "improvement",
                                   "t.loss": "within threshold"}
    assert verdicts(base, new, "10%")["t.speed"] == "within threshold"
    assert verdicts(base, new, "10%", "speed=5%")["t.speed"] == "regression"  # per metric wins
    assert verdicts(base, new, "loss=0.01")["t.loss"] == "regression"  # absolute: 0.02 > 0.01


def test_direction_from_option_then_record_then_name():
    base, new = {"t.speed": one(100, "speed")}, {"t.speed": one(120, "speed")}
    assert verdicts(base, new)["t.speed"] == "improvement"
    assert verdicts(base, new, directions=["speed=lower"])["t.speed"] == "regression"
    declared = {"t.speed": one(120, "speed", "lower")}
    assert verdicts(base, declared)["t.speed"] == "regression"
    assert verdicts({"t.n": one(1)}, {"t.n": one(5)})["t.n"] == "unchecked"


def test_missing_new_and_filtered_metrics():
    base = {"t.speed": one(1), "t.loss": one(1)}
    new = {"t.speed": one(1), "t.extra": one(1)}
    assert verdicts(base, new) == {"t.speed": "within threshold", "t.loss": "missing",
                                   "t.extra": "new"}
    assert verdicts(base, new, metrics=["speed"]) == {"t.speed": "within threshold"}


def test_repetitions_need_significance_as_well_as_threshold():
    base = {"t.speed": many(100, 101, 99, 100, 100)}
    noisy = {"t.speed": many(80, 120, 60, 130, 85)}  # median 85 (-15%) but all over the place
    clear = {"t.speed": many(85, 86, 84, 85, 85)}
    assert verdicts(base, noisy)["t.speed"] == "not significant"
    assert verdicts(base, clear)["t.speed"] == "regression"
    small = {"t.speed": many(99, 100, 98, 99, 99)}  # significant but within 5%
    assert verdicts(base, small)["t.speed"] == "within threshold"


def test_load_side_reads_each_kind(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"t.speed": 3, "t.loss": 0.5}))
    assert load_side(flat)["t.speed"].value == 3.0
    for text, message in [("[1, 2]", "not a flat result"), ('{"a": "x"}', "not a flat result"),
                          ("{", "cannot read"), ('{"schema": "other"}', "unknown schema")]:
        flat.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_side(flat)
    with pytest.raises(ConfigError, match="no summary.json, experiment.json or record.json"):
        load_side(tmp_path)


# --- through the CLI ----------------------------------------------------------------------------


def write(path: Path, document) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def test_cli_exit_codes_and_table(cli, tmp_path):
    base = write(tmp_path / "base.json", {"t.speed": 100.0, "t.training_time": 10.0})
    good = write(tmp_path / "good.json", {"t.speed": 101.0, "t.training_time": 10.2})
    bad = write(tmp_path / "bad.json", {"t.speed": 90.0, "t.training_time": 10.0})
    ok = cli("compare", base, good)
    assert ok.returncode == 0, ok.stderr
    assert "t.speed" in ok.stdout and "within threshold" in ok.stdout
    regressed = cli("compare", base, bad, "--junit", "j.xml", "--markdown", "c.md")
    assert regressed.returncode == 8
    assert "REGRESSION" in regressed.stdout and "-10.00%" in regressed.stdout
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "2"
    assert "**1 failure(s)**" in (tmp_path / "c.md").read_text()
    assert cli("compare", base, bad, "--threshold", "speed=11%").returncode == 0


def test_cli_bad_input_is_a_config_error(cli, tmp_path):
    base = write(tmp_path / "base.json", {"t.speed": 100.0})
    other = write(tmp_path / "other.json", {"u.speed": 100.0})
    listing = write(tmp_path / "list.json", [1, 2])
    assert cli("compare", base, listing).returncode == 3
    disjoint = cli("compare", base, other)
    assert disjoint.returncode == 3 and "no key in common" in disjoint.stderr
    typo = cli("compare", base, base, "--threshold", "sped=5%")
    assert typo.returncode == 3 and "did you mean 'speed'" in typo.stderr
    assert cli("compare", base, str(tmp_path / "absent.json")).returncode == 3
    assert cli("compare", base, base, "--alpha", "2").returncode == 3


def test_cli_compares_repeated_runs_and_writes_the_step_summary(cli, tmp_path, write_config):
    write_config("""
        [tasks.t]
        command_to_execute = "{python} -c 'print(\\"speed: %d\\" % ({base} + {seed} % 3))'"
        patterns = ['^speed: (\\S+)']
        metrics = ['speed']
        compute_method = ['last']
        [tasks.t.params]
        base = 100
    """)
    for name, base in (("old", "100"), ("new", "80")):
        run = cli("--task-name", "t", "--repetitions", "3", "--set", f"base={base}",
                  "--runs-dir", name, "--quiet")
        assert run.returncode == 0, run.stderr
    old, new = (str(next((tmp_path / n / "t").iterdir())) for n in ("old", "new"))
    step = tmp_path / "step.md"
    run = cli("compare", old, new, env={"GITHUB_STEP_SUMMARY": str(step)})
    assert run.returncode == 8, run.stdout + run.stderr
    assert "regression" in step.read_text().lower()
    assert "t.speed" in run.stdout
    assert cli("compare", old, old).returncode == 0
