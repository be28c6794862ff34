"""Flat result keys, atomic writes, and the versioned run record."""

from __future__ import annotations

import json
import math

import pytest

from driver.errors import ConfigError
from driver.reduce import MetricResult
from driver.results import RunRecord, flat_result, load_record, write_json_atomic


def record(**changes) -> RunRecord:
    base = dict(
        task="resnet50_cifar10", command="python train.py", status="ok", exit_code=0,
        started_at="2026-01-01T00:00:00+00:00", ended_at="2026-01-01T00:01:00+00:00",
        duration_s=60.0, run_dir="bench-runs/x",
        metrics=(MetricResult("speed", 812.5, "average", 10, 10),
                 MetricResult("loss", None, "last", 3, 0, nonfinite=3)),
        resource_metrics={"cpu_memory_usage": 300.5, "gpu_memory_usage_std": math.nan},
    )
    return RunRecord(**{**base, **changes})


def test_flat_keys_follow_the_old_contract():
    assert flat_result(record()) == {
        "resnet50_cifar10.speed": 812.5, "resnet50_cifar10.cpu_memory_usage": 300.5}
    assert flat_result(record(), "mxnet", "daily") == {
        "mxnet.resnet50_cifar10.speed.daily": 812.5,
        "mxnet.resnet50_cifar10.cpu_memory_usage.daily": 300.5}


def test_record_document_is_versioned_and_valid_json(tmp_path):
    path = tmp_path / "record.json"
    record().save(path)
    document = json.loads(path.read_text())
    assert document["schema_version"] == 2 and document["missing_metrics"] == ["loss"]
    assert document["metrics"]["loss"] == {**document["metrics"]["loss"], "value": None,
                                           "nonfinite": 3}
    assert document["resource_metrics"]["gpu_memory_usage_std"] is None  # never NaN
    loaded = load_record(tmp_path)  # a run directory works too
    assert loaded.task == "resnet50_cifar10" and loaded.metrics == record().metrics
    assert loaded == RunRecord.from_dict(document)


def test_version_1_records_still_load(tmp_path):
    document = record().to_dict()
    document["schema_version"] = 1
    for key in ("task_env", "plugin_errors", "storage_errors"):
        del document[key]
    for metric in document["metrics"].values():
        del metric["pattern"], metric["error"]
    write_json_atomic(tmp_path / "record.json", document)
    loaded = load_record(tmp_path)
    assert loaded.metrics[0].value == 812.5 and loaded.task_env == {} and loaded.plugin_errors == ()


def test_loader_refuses_unknown_versions_and_other_documents(tmp_path):
    path = tmp_path / "record.json"
    write_json_atomic(path, {**record().to_dict(), "schema_version": 99})
    with pytest.raises(ConfigError, match="schema_version 99 is not supported"):
        load_record(path)
    write_json_atomic(path, {"speed": 1})
    with pytest.raises(ConfigError, match="not a bench-driver run record"):
        load_record(path)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": math.nan})  # JSON has no NaN: refused, not half-written
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
