"""The machine a number came from: the versioned ``environment`` block of records and summaries.

Every reader here is a pure function of a *root* directory (``/`` on a real machine), so tests
point it at fake ``/sys`` and ``/proc`` trees. A field that cannot be read is None (null in JSON),
never guessed. The files are those pyperf reads (``pyperf system show``): cpufreq's
``scaling_governor`` and frequencies, ``intel_pstate/no_turbo`` or ``cpufreq/boost``,
``/sys/devices/system/cpu/isolated``, ``/proc/loadavg``, ASLR's ``randomize_va_space``, and the
cgroup limits (v2 ``cpu.max`` / ``memory.max``, v1 ``cpu.cfs_quota_us`` /
``memory.limit_in_bytes``). Collecting reads small files only: no subprocess, no heavy import;
torch, CUDA, cuDNN and NCCL versions come from the installed distributions' metadata, never from
importing torch. GPU fields come through NVML (driver.gpus) and only for the GPUs a run uses.

Format history of the block (``environment_version``):

* 1: the first version (see docs/environment.md for every key).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

ENVIRONMENT_VERSION = 1
ROOT = Path("/")
ROOT_ENV = "BENCH_DRIVER_SYSTEM_ROOT"  # a fake /sys and /proc tree to read instead (tests)
CPU_DIR = "sys/devices/system/cpu"
UNLIMITED = "max"  # a cgroup limit that is not set (as cgroup v2 writes it)
_V1_UNLIMITED_BYTES = 1 << 62  # v1 writes a huge page-rounded number for "no limit"
KIB_PER_MIB = 1024


def read_text(root: Path, relative: str) -> str | None:
    """The stripped contents of ``root/relative``; None when it cannot be read."""
    try:
        with open(root / relative, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_cpu_list(text: str | None) -> list[int] | None:
    """``"0-3,8"`` -> [0, 1, 2, 3, 8] (the kernel's CPU list format); None if unreadable."""
    if text is None:
        return None
    cpus: list[int] = []
    try:
        for part in filter(None, text.split(",")):
            first, _, last = part.partition("-")
            cpus.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        return None
    return cpus


def cpuinfo(root: Path = ROOT) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one ``{field: value}`` per logical CPU ([] when unreadable)."""
    text = read_text(root, "proc/cpuinfo")
    blocks = []
    for block in (text or "").split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        blocks.append({k.strip(): v.strip() for k, v in fields.items()})
    return [b for b in blocks if b]


def cpu_block(root: Path = ROOT) -> dict[str, Any]:
    """CPU model, logical and physical cores, the CPUs this process may use, isolated CPUs."""
    info = cpuinfo(root)
    online = parse_cpu_list(read_text(root, f"{CPU_DIR}/online"))
    models = [b["model name"] for b in info if "model name" in b]
    return {
        "model": models[0] if models else None,
        "logical_cores": len(online) if online is not None else (len(info) or None),
        "physical_cores": physical_cores(root, info, online or []),
        "isolated_cpus": read_text(root, f"{CPU_DIR}/isolated"),
    }


def physical_cores(root: Path, info: Sequence[dict[str, str]], online: Sequence[int]) -> int | None:
    """Distinct (package, core) pairs: from sysfs topology, else from /proc/cpuinfo."""
    pairs = {(read_text(root, f"{CPU_DIR}/cpu{n}/topology/physical_package_id"),
              read_text(root, f"{CPU_DIR}/cpu{n}/topology/core_id")) for n in online}
    if pairs and all(None not in p for p in pairs):
        return len(pairs)
    pairs = {(b.get("physical id"), b.get("core id")) for b in info}
    if pairs and all(None not in p for p in pairs):
        return len(pairs)
    return None


def frequency_block(root: Path = ROOT) -> dict[str, Any]:
    """cpu0's current/min/max frequency (MHz), every CPU's governor, and the turbo state."""
    freq = f"{CPU_DIR}/cpu0/cpufreq"
    cur_khz = _int(read_text(root, f"{freq}/scaling_cur_freq"))
    return {
        "current_mhz": cur_khz / 1000 if cur_khz is not None else _cpuinfo_mhz(root),
        "min_mhz": _mhz(read_text(root, f"{freq}/scaling_min_freq")),
        "max_mhz": _mhz(read_text(root, f"{freq}/scaling_max_freq")),
        "scaling_driver": read_text(root, f"{freq}/scaling_driver"),
        "governors": governors(root),
        "turbo": turbo(root),
    }


def _mhz(khz_text: str | None) -> float | None:
    khz = _int(khz_text)
    return khz / 1000 if khz is not None else None


def _cpuinfo_mhz(root: Path) -> float | None:
    for block in cpuinfo(root)[:1]:
        try:
            return float(block["cpu MHz"])
        except (KeyError, ValueError):
            return None
    return None


def governors(root: Path = ROOT) -> dict[str, list[int]] | None:
    """``{governor: [cpus]}`` over the online CPUs; None without cpufreq (most VMs)."""
    found: dict[str, list[int]] = {}
    for cpu in parse_cpu_list(read_text(root, f"{CPU_DIR}/online")) or []:
        governor = read_text(root, f"{CPU_DIR}/cpu{cpu}/cpufreq/scaling_governor")
        if governor is not None:
            found.setdefault(governor, []).append(cpu)
    return found or None


def turbo(root: Path = ROOT) -> bool | None:
    """Whether turbo/boost is on: intel_pstate's ``no_turbo``, else cpufreq's ``boost``."""
    no_turbo = read_text(root, f"{CPU_DIR}/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0"
    boost = read_text(root, f"{CPU_DIR}/cpufreq/boost")
    return boost == "1" if boost in ("0", "1") else None


def load_block(root: Path = ROOT) -> dict[str, Any]:
    """``/proc/loadavg``: the 1/5/15-minute load averages and the runnable/total tasks now."""
    parts = (read_text(root, "proc/loadavg") or "").split()
    try:
        runnable, _, total = parts[3].partition("/")
        return {"load_1m": float(parts[0]), "load_5m": float(parts[1]),
                "load_15m": float(parts[2]), "runnable_tasks": int(runnable),
                "total_tasks": int(total)}
    except (IndexError, ValueError):
        return dict.fromkeys(("load_1m", "load_5m", "load_15m", "runnable_tasks",
                              "total_tasks"))


def memory_block(root: Path = ROOT) -> dict[str, Any]:
    """Total and available memory from ``/proc/meminfo``, MiB."""
    found: dict[str, Any] = {"total_mib": None, "available_mib": None}
    for line in (read_text(root, "proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        name = {"MemTotal": "total_mib", "MemAvailable": "available_mib"}.get(key)
        kib = _int(value.split()[0]) if name and value.split() else None
        if name and kib is not None:
            found[name] = round(kib / KIB_PER_MIB, 1)
    return found


def cgroup_block(root: Path = ROOT) -> dict[str, Any]:
    """The CPU quota (cores) and memory limit (MiB) of this process's cgroup and its parents
    (the tightest one); ``"max"`` when none is set, None when they cannot be read."""
    paths = _cgroup_paths(read_text(root, "proc/self/cgroup"))
    if "" in paths:  # cgroup v2 (unified)
        return {"version": 2, "cpu_quota_cores": _limit(root, "sys/fs/cgroup", paths[""],
                                                        "cpu.max", _v2_cpu),
                "memory_limit_mib": _limit(root, "sys/fs/cgroup", paths[""], "memory.max",
                                           _v2_memory)}
    if not paths:
        return {"version": None, "cpu_quota_cores": None, "memory_limit_mib": None}
    cpu_dir = next((f"sys/fs/cgroup/{c}" for c in paths if "cpu" in c.split(",")), None)
    return {"version": 1,
            "cpu_quota_cores": _limit(root, cpu_dir, paths.get(_controller(paths, "cpu"), ""),
                                      "cpu.cfs_quota_us", _v1_cpu) if cpu_dir else None,
            "memory_limit_mib": _limit(root, "sys/fs/cgroup/memory", paths.get("memory", ""),
                                       "memory.limit_in_bytes", _v1_memory)}


def _cgroup_paths(text: str | None) -> dict[str, str]:
    """``/proc/self/cgroup`` -> ``{controllers: path}`` ("" for the v2 hierarchy, alone)."""
    paths = {}
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    return {"": paths[""]} if list(paths) == [""] else {k: v for k, v in paths.items() if k}


def _controller(paths: dict[str, str], name: str) -> str:
    return next((c for c in paths if name in c.split(",")), name)


def _limit(root: Path, mount: str, path: str, name: str, parse: Any) -> float | str | None:
    """The smallest limit in *path* and its parents (the mount's root may be the container's
    own cgroup, so a path that does not exist there is skipped)."""
    found: list[float | str] = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        base = f"{mount}/{'/'.join(parts[:depth])}".rstrip("/")
        value = parse(root, base, read_text(root, f"{base}/{name}"))
        if value is not None:
            found.append(value)
    numbers = [v for v in found if not isinstance(v, str)]
    return min(numbers) if numbers else (UNLIMITED if found else None)


def _v2_cpu(root: Path, base: str, text: str | None) -> float | str | None:
    quota, _, period = (text or "").partition(" ")
    if quota == "max":
        return UNLIMITED
    q, p = _int(quota), _int(period)
    return round(q / p, 3) if q is not None and p else None


def _v2_memory(root: Path, base: str, text: str | None) -> float | str | None:
    if text == "max":
        return UNLIMITED
    limit = _int(text)
    return round(limit / (1 << 20), 1) if limit is not None else None


def _v1_cpu(root: Path, base: str, text: str | None) -> float | str | None:
    quota, period = _int(text), _int(read_text(root, f"{base}/cpu.cfs_period_us"))
    if quota is None:
        return None
    return UNLIMITED if quota < 0 else (round(quota / period, 3) if period else None)


def _v1_memory(root: Path, base: str, text: str | None) -> float | str | None:
    limit = _int(text)
    if limit is None:
        return None
    return UNLIMITED if limit >= _V1_UNLIMITED_BYTES else round(limit / (1 << 20), 1)


def kernel_block(root: Path = ROOT) -> dict[str, Any]:
    """Kernel release, ASLR (``randomize_va_space``: 2 is full) and boot time (s since epoch)."""
    btime = next((_int(line.split()[1]) for line in
                  (read_text(root, "proc/stat") or "").splitlines()
                  if line.startswith("btime ") and len(line.split()) > 1), None)
    return {"release": read_text(root, "proc/sys/kernel/osrelease"),
            "aslr": _int(read_text(root, "proc/sys/kernel/randomize_va_space")),
            "boot_time": btime}


#: ``platform.python_implementation()``'s names for ``sys.implementation.name``.
IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy", "ironpython": "IronPython",
                   "jython": "Jython"}

#: Distributions whose version answers "which CUDA, cuDNN, NCCL" for a pip-installed torch.
CUDA_RUNTIME = tuple(f"nvidia-cuda-runtime-cu{v}" for v in (13, 12, 11))
CUDNN = tuple(f"nvidia-cudnn-cu{v}" for v in (13, 12, 11))
NCCL = tuple(f"nvidia-nccl-cu{v}" for v in (13, 12, 11))


def installed_distributions() -> dict[str, str]:
    """``{normalised name: version}`` of the distributions installed in this Python, the first
    of each name on ``sys.path`` (what importlib.metadata finds first), read from the
    ``NAME-VERSION.dist-info`` directory names: one listing per path entry, without
    importlib.metadata's ~20 ms import and its metadata parsing."""
    found: dict[str, str] = {}
    for entry in sys.path:
        for name, version in _dist_infos(entry or "."):
            found.setdefault(name, version)
    return found


def distribution_version(names: Iterable[str], installed: Mapping[str, str]) -> str | None:
    """The version of the first of *names* in *installed*; None if none is there."""
    wanted = [name.lower().replace("-", "_") for name in names]
    return next((installed[name] for name in wanted if name in installed), None)


def _dist_infos(directory: str) -> list[tuple[str, str]]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for entry in names:
        if entry.endswith(".dist-info") and "-" in entry:
            name, _, version = entry[: -len(".dist-info")].partition("-")
            found.append((name.lower().replace("-", "_").replace(".", "_"), version))
    return found


def software_block() -> dict[str, Any]:
    """Python, and torch/CUDA/cuDNN/NCCL from the installed distributions (torch is never
    imported). CUDA is the runtime distribution's version, else torch's own ``+cuXYZ`` tag."""
    installed = installed_distributions()
    torch = distribution_version(["torch"], installed)
    cuda = distribution_version(CUDA_RUNTIME, installed)
    if cuda is None and torch and "+cu" in torch:
        tag = torch.split("+cu", 1)[1]
        cuda = f"{tag[:-1]}.{tag[-1]}" if tag.isdigit() and len(tag) > 1 else None
    return {"python": sys.version.split()[0],
            "python_implementation": IMPLEMENTATIONS.get(sys.implementation.name,
                                                         sys.implementation.name),
            "python_executable": sys.executable, "torch": torch, "cuda": cuda,
            "cudnn": distribution_version(CUDNN, installed),
            "nccl": distribution_version(NCCL, installed)}


def usable_cores() -> int | None:
    """How many CPUs this process may run on (its affinity mask); None where unknown."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    return len(getaffinity(0)) if getaffinity is not None else os.cpu_count()


def system_root(environ: Mapping[str, str] | None = None) -> Path:
    """The machine's root, or the fake tree ``BENCH_DRIVER_SYSTEM_ROOT`` names (for tests)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(ROOT_ENV) or ROOT)


def machine_now(root: Path, gpus: Sequence[int] = ()) -> dict[str, Any]:
    """What the noise checks read, cheaply (a few small files; NVML only with *gpus*)."""
    if gpus:
        from driver.gpus.state import gpu_states
    online = parse_cpu_list(read_text(root, f"{CPU_DIR}/online"))
    return {"frequency": frequency_block(root), "load": load_block(root),
            "usable_cores": usable_cores() if root == ROOT else None,
            "logical_cores": len(online) if online else None,
            "gpus": gpu_states(gpus) if gpus else []}


def platform_name() -> str:
    """``Linux-6.1.0-amd64-x86_64``: what ``platform.system()-release()-machine()`` gives, from
    ``os.uname()`` (the platform module costs ~10M instructions of imports and regexes)."""
    name = os.uname()
    return f"{name.sysname}-{name.release}-{name.machine}"


def collect(root: Path = ROOT) -> dict[str, Any]:
    """The block's fields that do not change during a run (read while the task runs)."""
    return {
        "environment_version": ENVIRONMENT_VERSION,
        "platform": platform_name(),
        "cpu": {**cpu_block(root), "usable_cores": usable_cores() if root == ROOT else None},
        "memory": memory_block(root),
        "kernel": kernel_block(root),
        "cgroup": cgroup_block(root),
        "software": software_block(),
    }
