"""Noise checks (driver.noise), ``--strict-system`` and ``bench-driver system``, on fake /sys and
/proc trees (``BENCH_DRIVER_SYSTEM_ROOT``) and the NVML test double (tests/fake_nvml.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import fake_nvml
from driver import noise
from driver.environment import ROOT_ENV, machine_now
from driver.errors import ConfigError
from test_environment import cpufreq, write_tree

QUIET = {"proc/loadavg": "0.50 0.40 0.30 1/200 999\n",
         **cpufreq(["performance"] * 4),
         "sys/devices/system/cpu/intel_pstate/no_turbo": "1\n"}
NOISY = {"proc/loadavg": "9.00 8.00 7.00 12/300 999\n",
         **cpufreq(["powersave", "performance", "powersave", "powersave"]),
         "sys/devices/system/cpu/intel_pstate/no_turbo": "0\n"}

TASK = """
[tasks.hello]
command_to_execute = "touch started; echo value=1"
patterns = ['value=(\\d+)']
metrics = ['value']
compute_method = ['last']
"""


def verdicts(root: Path) -> dict[str, str]:
    return {c.name: c.verdict for c in noise.machine_checks(machine_now(root))}


def test_a_quiet_machine_passes_every_check(tmp_path):
    assert verdicts(write_tree(tmp_path, QUIET)) == {
        "load average": "ok", "CPU scaling governor": "ok", "turbo": "ok"}


def test_a_noisy_machine_fails_each_check_with_its_fix(tmp_path):
    checks = {c.name: c for c in noise.machine_checks(machine_now(write_tree(tmp_path, NOISY)))}
    assert [c.verdict for c in checks.values()] == ["noisy"] * 3
    assert checks["load average"].seen == "9 (1 min) on 4 core(s), 12 runnable task(s)"
    assert checks["CPU scaling governor"].seen == "powersave on 3 CPU(s); performance on 1 CPU(s)"
    assert checks["CPU scaling governor"].fix == "sudo cpupower frequency-set --governor performance"
    assert checks["turbo"].fix == "echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo"


def test_a_machine_that_does_not_say_is_unknown_not_noisy(tmp_path):
    assert set(verdicts(tmp_path).values()) == {"unknown"}


def test_boost_without_intel_pstate_gets_the_cpufreq_fix(tmp_path):
    files = {**QUIET, "sys/devices/system/cpu/cpufreq/boost": "1\n"}
    del files["sys/devices/system/cpu/intel_pstate/no_turbo"]
    files["sys/devices/system/cpu/cpu0/cpufreq/scaling_driver"] = "acpi-cpufreq\n"
    turbo = noise.turbo_check(machine_now(write_tree(tmp_path, files)))
    assert turbo.noisy and turbo.fix == "echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost"


def test_strict_system_refuses_a_noisy_machine_before_anything_starts(tmp_path, write_config,
                                                                      cli):
    write_config(TASK)
    root = write_tree(tmp_path / "machine", NOISY)
    run = cli("--task-name", "hello", "--strict-system", env={ROOT_ENV: str(root)})
    assert run.returncode == 3, run.stderr
    assert "--strict-system: this machine is noisy, the run was not started" in run.stderr
    assert "CPU scaling governor: powersave on 3 CPU(s)" in run.stderr
    assert "(fix: sudo cpupower frequency-set --governor performance)" in run.stderr
    assert not (tmp_path / "started").exists() and not (tmp_path / "bench-runs").exists()


def test_a_noisy_machine_only_warns_by_default(tmp_path, write_config, cli):
    write_config(TASK)
    run = cli("--task-name", "hello", env={ROOT_ENV: str(write_tree(tmp_path / "m", NOISY))})
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "started").exists()
    warnings = run.record["environment"]["warnings"]
    assert [w.split(":")[0] for w in warnings] == ["load average", "CPU scaling governor", "turbo"]
    for line in warnings:
        assert f"bench-driver: warning: noisy machine: {line}" in run.stderr
    assert run.record["environment"]["load_at_start"]["load_1m"] == 9.0


def test_strict_system_runs_on_a_quiet_machine(tmp_path, write_config, cli):
    write_config(TASK)
    run = cli("--task-name", "hello", "--strict-system",
              env={ROOT_ENV: str(write_tree(tmp_path / "m", QUIET))})
    assert run.returncode == 0, run.stderr
    assert run.record["environment"]["warnings"] == []
    assert "noisy machine" not in run.stderr


def test_system_prints_the_environment_and_a_verdict_per_check(tmp_path, cli):
    root = write_tree(tmp_path / "machine", {**NOISY, "proc/meminfo": "MemTotal: 1024 kB\n"})
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    run = cli("system", env={ROOT_ENV: str(root)})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "  governors: performance=[1], powersave=[0, 2, 3]" in lines or \
        "  governors: powersave=[0, 2, 3], performance=[1]" in lines
    assert "  noisy    turbo: on" in lines
    assert "           fix: sudo cpupower frequency-set --governor performance" in lines
    assert "  total_mib: 1.0" in lines and "  release: unknown" in lines
    assert lines[-1].startswith("verdict: noisy (3 noisy check(s) of 3)")
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # unchanged


def test_system_json_holds_the_block_and_the_checks(tmp_path, cli):
    run = cli("system", "--json", env={ROOT_ENV: str(write_tree(tmp_path / "m", QUIET))})
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["environment_version"] == 1 and document["frequency"]["turbo"] is False
    assert [c["verdict"] for c in document["checks"]] == ["ok", "ok", "ok"]


# --- GPUs, through the NVML test double ----------------------------------------------------------


def use_fake_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **device: Any) -> None:
    scenario = {"driver": "550.54.15", "devices": [{"name": "NVIDIA H200", **device}]}
    for name, value in fake_nvml.scenario_env(tmp_path / "nvml.json", scenario).items():
        monkeypatch.setenv(name, value)


def test_gpu_fields_come_from_nvml(tmp_path, monkeypatch):
    use_fake_nvml(tmp_path, monkeypatch, sm_clock_mhz=1980, memory_clock_mhz=2619,
                  max_sm_clock_mhz=1980, temperature_c=41, throttle_reasons=0x1,
                  thermal_violation_ns=12)
    from driver.gpus.state import gpu_states

    [gpu] = gpu_states([0])
    assert gpu == {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-00000000-0000-0000-0000-"
                   "000000000000", "driver_version": "550.54.15", "sm_clock_mhz": 1980,
                   "memory_clock_mhz": 2619, "max_sm_clock_mhz": 1980, "temperature_c": 41,
                   "throttle_reasons": ["gpu_idle"], "thermal_violation_ns": 12,
                   "process_pids": []}


def test_gpu_fields_nvml_does_not_answer_are_null(tmp_path, monkeypatch):
    use_fake_nvml(tmp_path, monkeypatch, processes_error="NotSupported")
    from driver.gpus.state import gpu_states

    [gpu] = gpu_states([0])
    assert gpu["sm_clock_mhz"] is gpu["temperature_c"] is gpu["throttle_reasons"] is None
    assert gpu["process_pids"] is None
    monkeypatch.delenv("BENCH_FAKE_NVML")  # nvmlInit fails as on a machine without the driver
    [gone] = gpu_states([0])
    assert gone["index"] == 0 and gone["error"].startswith("NVML not available")


def test_another_process_on_the_runs_gpu_is_noisy_and_refused_when_strict(tmp_path, monkeypatch):
    use_fake_nvml(tmp_path, monkeypatch, processes=[{"pid": os.getpid(), "used_mib": 500}])
    environ = {ROOT_ENV: str(write_tree(tmp_path / "m", QUIET))}
    watch = noise.RunWatch((0,), False, environ)
    assert watch.warnings == [f"GPU 0 processes: held by pid(s) {os.getpid()} (fix: end those "
                              f"processes, or choose another GPU with --gpus)"]
    with pytest.raises(ConfigError, match=r"GPU 0 processes: held by pid"):
        noise.RunWatch((0,), True, environ)


def test_thermal_throttling_during_the_run_is_a_warning_in_the_block(tmp_path, monkeypatch,
                                                                     capsys):
    bits = tmp_path / "bits"
    bits.write_text("0\n")
    use_fake_nvml(tmp_path, monkeypatch, temperature_c=88, throttle_reasons_file=str(bits))
    watch = noise.RunWatch((0,), True, {ROOT_ENV: str(write_tree(tmp_path / "m", QUIET))})
    bits.write_text("96\n")  # the run heated the GPU: SW + HW thermal slowdown
    block = watch.finish({"host": "h"})
    assert block["gpus"][0]["throttle_reasons"] == []
    assert block["gpus_at_end"][0]["throttle_reasons"] == ["sw_thermal_slowdown",
                                                           "hw_thermal_slowdown"]
    assert block["warnings"] == ["GPU 0 throttling: sw_thermal_slowdown, hw_thermal_slowdown at "
                                 "88 C at the end of the run (fix: cool the GPU (airflow, a "
                                 "lower power limit) and rerun)"]
    assert "noisy machine: GPU 0 throttling" in capsys.readouterr().err


def test_thermal_throttling_over_before_the_run_ends_is_still_a_warning(tmp_path, monkeypatch,
                                                                        capsys):
    # NVML's violation counter grew during the run; the clock-event reasons are clear again
    counter = tmp_path / "thermal_ns"
    counter.write_text("5000000000\n")
    use_fake_nvml(tmp_path, monkeypatch, temperature_c=70, throttle_reasons=0,
                  thermal_violation_ns_file=str(counter))
    watch = noise.RunWatch((0,), True, {ROOT_ENV: str(write_tree(tmp_path / "m", QUIET))})
    counter.write_text("6250000000\n")
    block = watch.finish({"host": "h"})
    assert block["gpus"][0]["thermal_violation_ns"] == 5_000_000_000
    assert block["gpus_at_end"][0]["throttle_reasons"] == []
    assert block["warnings"] == ["GPU 0 thermal throttling during the run: clocks held down by "
                                 "heat for 1.250 s (fix: cool the GPU (airflow, a lower power "
                                 "limit) and rerun)"]
    assert "noisy machine: GPU 0 thermal throttling during the run" in capsys.readouterr().err


def test_an_unchanged_or_missing_violation_counter_is_no_warning(tmp_path, monkeypatch):
    use_fake_nvml(tmp_path, monkeypatch, temperature_c=50, throttle_reasons=0,
                  thermal_violation_ns=7)
    watch = noise.RunWatch((0,), True, {ROOT_ENV: str(write_tree(tmp_path / "m", QUIET))})
    assert watch.finish({"host": "h"})["warnings"] == []
    assert noise.gpu_thermal_time_check({"index": 0}, {"index": 0}).verdict == noise.UNKNOWN


# --- repeated runs and compare mention the noise -------------------------------------------------


def test_a_set_records_its_environment_and_names_the_noisy_runs(tmp_path, write_config, cli):
    write_config(TASK)
    run = cli("--task-name", "hello", "--repetitions", "2", "--runs-dir", "sets",
              env={ROOT_ENV: str(write_tree(tmp_path / "m", NOISY))})
    assert run.returncode == 0, run.stderr
    summary = json.loads(next((tmp_path / "sets").rglob("summary.json")).read_text())
    assert summary["schema_version"] == 3
    assert summary["environment"]["load_at_start"]["load_1m"] == 9.0
    assert [len(r["warnings"]) for r in summary["runs"]] == [3, 3]
    assert "~ hello: noisy machine in 2 of 2 run(s): CPU scaling governor: powersave" in run.stderr


def test_compare_mentions_noise_and_environment_differences(tmp_path, write_config, cli):
    write_config(TASK)
    for name, files in (("quiet", QUIET), ("noisy", NOISY)):
        run = cli("--task-name", "hello", "--runs-dir", name,
                  env={ROOT_ENV: str(write_tree(tmp_path / name / "root", files))})
        assert run.returncode == 0, run.stderr
    quiet, noisy = (next((tmp_path / n).glob("hello/*")) for n in ("quiet", "noisy"))
    run = cli("compare", str(quiet), str(noisy), "--metric", "value")  # memory varies
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if line.startswith("bench-driver: note:")]
    assert "bench-driver: note: NEW noisy machine: turbo: on (fix: echo 1 | sudo tee " \
           "/sys/devices/system/cpu/intel_pstate/no_turbo)" in notes
    assert not any("BASELINE" in n for n in notes)  # the quiet side had no warning
    assert "bench-driver: note: the environments differ: frequency.turbo False -> True" in notes
    assert any(n.startswith("bench-driver: note: the environments differ: frequency.governors")
               for n in notes)


def test_a_version_2_summary_still_loads_without_environment_or_warnings(tmp_path):
    from driver.experiments.summary import SetSummary, noise_lines

    path = tmp_path / "summary.json"
    path.write_text(json.dumps({
        "schema": "bench-driver/summary", "schema_version": 2, "task": "t", "repetitions": 1,
        "warmup": 0, "base_seed": 0, "statistic": "median", "metrics": {},
        "runs": [{"kind": "repetition", "index": 0, "seed": 0, "status": "ok", "exit_code": 0,
                  "signal": None, "duration_s": 1.0, "run_dir": "r", "record": "r/record.json",
                  "resumed": False}]}))
    summary = SetSummary.load(path)
    assert summary.environment == {} and summary.runs[0].warnings == ()
    assert noise_lines([summary]) == []
