"""The environment block's readers (driver.environment) against fake /sys and /proc trees written
by each test, and the whole block of a real run on this machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from driver import environment as env

CPU = "sys/devices/system/cpu"
CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
cpu MHz\t\t: 2500.123
physical id\t: 0
core id\t\t: 0

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
cpu MHz\t\t: 2400.000
physical id\t: 0
core id\t\t: 0

processor\t: 2
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
physical id\t: 0
core id\t\t: 1

processor\t: 3
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
physical id\t: 1
core id\t\t: 0
"""


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write each ``relative path: contents`` under *root*; return *root*."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def cpufreq(governors: list[str], **extra: str) -> dict[str, str]:
    """A cpufreq tree: CPU n gets governors[n]; cpu0 has frequencies."""
    files = {f"{CPU}/online": f"0-{len(governors) - 1}\n",
             f"{CPU}/cpu0/cpufreq/scaling_cur_freq": "2300000\n",
             f"{CPU}/cpu0/cpufreq/scaling_min_freq": "1000000\n",
             f"{CPU}/cpu0/cpufreq/scaling_max_freq": "3900000\n",
             f"{CPU}/cpu0/cpufreq/scaling_driver": "intel_pstate\n"}
    files.update({f"{CPU}/cpu{n}/cpufreq/scaling_governor": f"{g}\n"
                  for n, g in enumerate(governors)})
    files.update(extra)
    return files


def test_cpu_list_format():
    assert env.parse_cpu_list("0-3,8,10-11\n".strip()) == [0, 1, 2, 3, 8, 10, 11]
    assert env.parse_cpu_list("") == []
    assert env.parse_cpu_list(None) is None
    assert env.parse_cpu_list("0-x") is None


def test_cpu_model_and_cores_from_cpuinfo(tmp_path):
    root = write_tree(tmp_path, {"proc/cpuinfo": CPUINFO, f"{CPU}/online": "0-3\n",
                                 f"{CPU}/isolated": "2-3\n"})
    cpu = env.cpu_block(root)
    assert cpu == {"model": "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "logical_cores": 4,
                   "physical_cores": 3, "isolated_cpus": "2-3"}


def test_physical_cores_prefer_sysfs_topology(tmp_path):
    files = {f"{CPU}/online": "0-3\n"}
    for n in range(4):  # 2 cores with 2 threads each
        files[f"{CPU}/cpu{n}/topology/physical_package_id"] = "0\n"
        files[f"{CPU}/cpu{n}/topology/core_id"] = f"{n % 2}\n"
    assert env.cpu_block(write_tree(tmp_path, files))["physical_cores"] == 2


def test_unreadable_cpu_fields_are_null(tmp_path):
    assert env.cpu_block(tmp_path) == {"model": None, "logical_cores": None,
                                       "physical_cores": None, "isolated_cpus": None}


def test_frequency_governors_and_intel_turbo(tmp_path):
    root = write_tree(tmp_path, cpufreq(["performance", "powersave", "performance"], **{
        f"{CPU}/intel_pstate/no_turbo": "0\n"}))
    assert env.frequency_block(root) == {
        "current_mhz": 2300.0, "min_mhz": 1000.0, "max_mhz": 3900.0,
        "scaling_driver": "intel_pstate",
        "governors": {"performance": [0, 2], "powersave": [1]}, "turbo": True}


@pytest.mark.parametrize("files, expected", [
    ({f"{CPU}/intel_pstate/no_turbo": "1\n"}, False),
    ({f"{CPU}/cpufreq/boost": "1\n"}, True),
    ({f"{CPU}/cpufreq/boost": "0\n"}, False),
    ({f"{CPU}/intel_pstate/no_turbo": "junk\n", f"{CPU}/cpufreq/boost": "1\n"}, True),
    ({}, None),
])
def test_turbo_from_no_turbo_or_boost(tmp_path, files, expected):
    assert env.turbo(write_tree(tmp_path, files)) is expected


def test_no_cpufreq_gives_nulls_and_cpuinfo_mhz(tmp_path):
    root = write_tree(tmp_path, {"proc/cpuinfo": CPUINFO, f"{CPU}/online": "0-3\n"})
    block = env.frequency_block(root)
    assert block == {"current_mhz": 2500.123, "min_mhz": None, "max_mhz": None,
                     "scaling_driver": None, "governors": None, "turbo": None}


def test_load_average_and_runnable_tasks(tmp_path):
    root = write_tree(tmp_path, {"proc/loadavg": "3.52 2.10 1.05 5/412 98765\n"})
    assert env.load_block(root) == {"load_1m": 3.52, "load_5m": 2.1, "load_15m": 1.05,
                                    "runnable_tasks": 5, "total_tasks": 412}
    assert set(env.load_block(tmp_path / "none").values()) == {None}


def test_memory_from_meminfo(tmp_path):
    root = write_tree(tmp_path, {"proc/meminfo": "MemTotal:       16384000 kB\n"
                                                 "MemFree:         1000 kB\n"
                                                 "MemAvailable:    8192000 kB\n"})
    assert env.memory_block(root) == {"total_mib": 16000.0, "available_mib": 8000.0}


def test_kernel_aslr_and_boot_time(tmp_path):
    root = write_tree(tmp_path, {"proc/sys/kernel/osrelease": "6.1.0-18-amd64\n",
                                 "proc/sys/kernel/randomize_va_space": "2\n",
                                 "proc/stat": "cpu  1 2 3\nbtime 1700000000\n"})
    assert env.kernel_block(root) == {"release": "6.1.0-18-amd64", "aslr": 2,
                                      "boot_time": 1700000000}


def test_cgroup_v2_limits_take_the_tightest_level(tmp_path):
    root = write_tree(tmp_path, {
        "proc/self/cgroup": "0::/user.slice/job\n",
        "sys/fs/cgroup/user.slice/cpu.max": "400000 100000\n",
        "sys/fs/cgroup/user.slice/job/cpu.max": "150000 100000\n",
        "sys/fs/cgroup/user.slice/job/memory.max": "max\n",
        "sys/fs/cgroup/user.slice/memory.max": "2147483648\n"})
    assert env.cgroup_block(root) == {"version": 2, "cpu_quota_cores": 1.5,
                                      "memory_limit_mib": 2048.0}


def test_cgroup_v2_without_limits_says_max(tmp_path):
    root = write_tree(tmp_path, {"proc/self/cgroup": "0::/\n",
                                 "sys/fs/cgroup/cpu.max": "max 100000\n",
                                 "sys/fs/cgroup/memory.max": "max\n"})
    assert env.cgroup_block(root) == {"version": 2, "cpu_quota_cores": "max",
                                      "memory_limit_mib": "max"}


def test_cgroup_v1_quota_and_memory_limit(tmp_path):
    root = write_tree(tmp_path, {
        "proc/self/cgroup": "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",  # the container's own root
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n"})
    assert env.cgroup_block(root) == {"version": 1, "cpu_quota_cores": "max",
                                      "memory_limit_mib": 1024.0}
    write_tree(tmp_path, {"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
                          "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert env.cgroup_block(root)["cpu_quota_cores"] == 2.0


def test_cgroup_unreadable_is_null(tmp_path):
    assert env.cgroup_block(tmp_path) == {"version": None, "cpu_quota_cores": None,
                                          "memory_limit_mib": None}


def test_versions_from_dist_info_names_without_importing(tmp_path, monkeypatch):
    site = write_tree(tmp_path, {"torch-2.4.1.dist-info/METADATA": "",
                                 "nvidia_cudnn_cu12-9.1.0.70.dist-info/METADATA": "",
                                 "nvidia_nccl_cu12-2.20.5.dist-info/METADATA": "",
                                 "nvidia_cuda_runtime_cu12-12.1.105.dist-info/METADATA": ""})
    monkeypatch.setattr(sys, "path", [str(site)])
    software = env.software_block()
    assert (software["torch"], software["cuda"], software["cudnn"], software["nccl"]) == (
        "2.4.1", "12.1.105", "9.1.0.70", "2.20.5")
    assert "torch" not in sys.modules or sys.modules["torch"] is not None  # never imported here


def test_cuda_from_the_torch_wheel_tag_else_null(tmp_path, monkeypatch):
    site = write_tree(tmp_path, {"torch-2.1.0+cu121.dist-info/METADATA": ""})
    monkeypatch.setattr(sys, "path", [str(site)])
    assert env.software_block()["cuda"] == "12.1"
    monkeypatch.setattr(sys, "path", [str(tmp_path / "empty")])
    software = env.software_block()
    assert software["torch"] is software["cuda"] is software["cudnn"] is software["nccl"] is None


def test_system_root_is_the_documented_setting(tmp_path):
    assert env.system_root({}) == Path("/")
    assert env.system_root({env.ROOT_ENV: str(tmp_path)}) == tmp_path


#: Every key of a run record's environment block (version 1), section by section.
BLOCK_KEYS = {
    "host": None, "driver_version": None, "git_commit": None, "environment_version": None,
    "platform": None,
    "cpu": {"model", "logical_cores", "physical_cores", "isolated_cpus", "usable_cores"},
    "memory": {"total_mib", "available_mib"},
    "kernel": {"release", "aslr", "boot_time"},
    "cgroup": {"version", "cpu_quota_cores", "memory_limit_mib"},
    "software": {"python", "python_implementation", "python_executable", "torch", "cuda",
                 "cudnn", "nccl"},
    "frequency": {"current_mhz", "min_mhz", "max_mhz", "scaling_driver", "governors", "turbo"},
    "load_at_start": {"load_1m", "load_5m", "load_15m", "runnable_tasks", "total_tasks"},
    "load_at_end": {"load_1m", "load_5m", "load_15m", "runnable_tasks", "total_tasks"},
    "gpus": None, "gpus_at_end": None, "warnings": None,
}


def test_a_real_run_records_every_key_of_the_block(write_config, cli):
    write_config("""
        [tasks.hello]
        command_to_execute = "echo value=1"
        patterns = ['value=(\\d+)']
        metrics = ['value']
        compute_method = ['last']
    """)
    run = cli("--task-name", "hello", "--quiet")
    assert run.returncode == 0, run.stderr
    block = run.record["environment"]
    assert set(block) == set(BLOCK_KEYS)
    for section, keys in BLOCK_KEYS.items():
        if keys is not None:
            assert set(block[section]) == keys, section
    assert block["environment_version"] == env.ENVIRONMENT_VERSION
    assert block["gpus"] == block["gpus_at_end"] == []  # the run used no GPU
    assert block["software"]["python"] == sys.version.split()[0]
    assert block["cpu"]["logical_cores"] >= 1 and block["memory"]["total_mib"] > 0
    print(json.dumps(block, indent=1))  # what this machine gave, with pytest -s


def test_the_cost_benchmark_runs_and_prints_its_ratio():
    import subprocess

    from conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "environment_cost.py"),
                           "--quick"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RATIO environment_on_run_path = " in done.stdout  # timings are not asserted
