"""Noise checks: is this machine quiet enough to trust a benchmark figure?

A check reads the cheap part of the environment (driver.environment.machine_now) and gives a
verdict: ``ok``, ``noisy`` (with the fix, the way ``pyperf system show`` advises) or ``unknown``
(the machine does not say). Before a run: the load average against the cores, the CPU frequency
scaling governor, turbo, and other processes on the run's GPUs. After it: thermal throttling of
the run's GPUs. A noisy machine is a warning in the record (``environment.warnings``) and on the
console; ``--strict-system`` refuses to start the run instead (ConfigError, exit 3, nothing is
started). Throttling seen only at the end of a run is always a warning: the run already happened.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from driver.errors import ConfigError
from driver.records import Record

OK, NOISY, UNKNOWN = "ok", "noisy", "unknown"
COOL_THE_GPU = "cool the GPU (airflow, a lower power limit) and rerun"  # both thermal checks' fix
GOVERNOR_FIX = "sudo cpupower frequency-set --governor performance"
TURBO_FIXES = {"intel_pstate": "echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo",
               "": "echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost"}


class Check(Record):
    """One noise check's verdict on the machine, what it saw, and how to fix it."""

    name: str
    verdict: str  # OK, NOISY or UNKNOWN
    seen: str
    fix: str = ""

    @property
    def noisy(self) -> bool:
        """Whether this check found the machine noisy."""
        return self.verdict == NOISY

    def warning(self) -> str:
        """The line the record and the console get: ``"CPU governor: powersave (fix: ...)"``."""
        return f"{self.name}: {self.seen}" + (f" (fix: {self.fix})" if self.fix else "")


def load_check(now: Mapping[str, Any]) -> Check:
    """Noisy when the 1-minute load average exceeds the cores this process may use."""
    cores = now.get("usable_cores") or now.get("logical_cores")
    load = now.get("load") or {}
    if not cores or load.get("load_1m") is None:
        return Check("load average", UNKNOWN, "cannot read /proc/loadavg or the core count")
    seen = (f"{load['load_1m']:g} (1 min) on {cores} core(s), "
            f"{load['runnable_tasks']} runnable task(s)")
    if load["load_1m"] > cores:
        return Check("load average", NOISY, seen,
                     "wait for the other jobs to end, or run on an idle machine")
    return Check("load average", OK, seen)


def governor_check(now: Mapping[str, Any]) -> Check:
    """Noisy unless every CPU's scaling governor is ``performance``."""
    governors = (now.get("frequency") or {}).get("governors")
    if not governors:
        return Check("CPU scaling governor", UNKNOWN, "no cpufreq (a VM, or not Linux)")
    seen = "; ".join(f"{g} on {len(cpus)} CPU(s)" for g, cpus in governors.items())
    if set(governors) != {"performance"}:
        return Check("CPU scaling governor", NOISY, seen, GOVERNOR_FIX)
    return Check("CPU scaling governor", OK, seen)


def turbo_check(now: Mapping[str, Any]) -> Check:
    """Noisy when turbo/boost is on: the clock then depends on temperature and load."""
    frequency = now.get("frequency") or {}
    if frequency.get("turbo") is None:
        return Check("turbo", UNKNOWN, "neither intel_pstate/no_turbo nor cpufreq/boost exists")
    if frequency["turbo"]:
        driver = "intel_pstate" if frequency.get("scaling_driver") == "intel_pstate" else ""
        return Check("turbo", NOISY, "on", TURBO_FIXES[driver])
    return Check("turbo", OK, "off")


def gpu_process_check(gpu: Mapping[str, Any]) -> Check:
    """Noisy when another process holds this GPU of the run before the run starts."""
    name, pids = f"GPU {gpu['index']} processes", gpu.get("process_pids")
    if pids is None:
        return Check(name, UNKNOWN, gpu.get("error") or "NVML lists no processes")
    if pids:
        return Check(name, NOISY, f"held by pid(s) {', '.join(map(str, pids))}",
                     "end those processes, or choose another GPU with --gpus")
    return Check(name, OK, "no other process")


def gpu_thermal_check(gpu: Mapping[str, Any], when: str) -> Check:
    """Noisy when this GPU's clocks are slowed by heat (or a hardware slowdown) *when*."""
    from driver.gpus.state import THERMAL

    name, reasons = f"GPU {gpu['index']} throttling", gpu.get("throttle_reasons")
    temperature = f" at {gpu['temperature_c']} C" if gpu.get("temperature_c") else ""
    hot = [r for r in reasons or () if r in THERMAL]
    if reasons is None:
        return Check(name, UNKNOWN, gpu.get("error") or "NVML gives no reasons")
    if hot:
        return Check(name, NOISY, f"{', '.join(hot)}{temperature} {when}",
                     COOL_THE_GPU)
    return Check(name, OK, f"none{temperature} {when}")


def gpu_thermal_time_check(start: Mapping[str, Any], end: Mapping[str, Any]) -> Check:
    """Noisy when NVML's thermal violation counter of this GPU grew between *start* and *end*:
    its clocks were held down by heat at some moment of the run, even if not at its end."""
    name = f"GPU {end['index']} thermal throttling during the run"
    before, after = start.get("thermal_violation_ns"), end.get("thermal_violation_ns")
    if before is None or after is None:
        return Check(name, UNKNOWN, "NVML gives no thermal violation counter")
    if after > before:
        return Check(name, NOISY, f"clocks held down by heat for {(after - before) / 1e9:.3f} s",
                     COOL_THE_GPU)
    return Check(name, OK, "none")


def machine_checks(now: Mapping[str, Any]) -> list[Check]:
    """Every check of a machine_now() reading."""
    gpus = now.get("gpus") or []
    return [load_check(now), governor_check(now), turbo_check(now),
            *(gpu_process_check(g) for g in gpus), *(gpu_thermal_check(g, "now") for g in gpus)]


class RunWatch:
    """The checks around one run: before it (refusing a noisy machine when *strict*), and
    after it (throttling), merged into the record's environment block."""

    def __init__(self, gpus: Sequence[int], strict: bool, environ: Mapping[str, str]) -> None:
        from driver.environment import machine_now, system_root

        self.root, self.gpus = system_root(environ), tuple(gpus)
        self.start = machine_now(self.root, self.gpus)
        noisy = [c for c in machine_checks(self.start) if c.noisy]
        if noisy and strict:
            raise ConfigError("--strict-system: this machine is noisy, the run was not started: "
                              + "; ".join(c.warning() for c in noisy)
                              + "; fix it, or run without --strict-system")
        self.warnings = [c.warning() for c in noisy]
        warn(self.warnings)

    def finish(self, block: Mapping[str, Any]) -> dict[str, Any]:
        """*block* (driver.results.environment) with the readings before and after the run and
        every warning (those found now are printed)."""
        from driver.environment import load_block
        from driver.gpus.state import gpu_states

        end_gpus = gpu_states(self.gpus) if self.gpus else []
        ends = [gpu_thermal_check(gpu, "at the end of the run") for gpu in end_gpus]
        ends += [gpu_thermal_time_check(start, end)
                 for start, end in zip(self.start["gpus"], end_gpus)]
        late = [c.warning() for c in ends if c.noisy]
        warn(late)
        return {**block, "frequency": self.start["frequency"],
                "load_at_start": self.start["load"], "load_at_end": load_block(self.root),
                "gpus": self.start["gpus"], "gpus_at_end": end_gpus,
                "warnings": self.warnings + late}


_printed: set[str] | None = None  # the checks warned about so far, once each is enough


def warn_once_per_check() -> None:
    """From now on, print each check's first warning only (an experiment: its table at the end
    counts them); the records keep every warning."""
    global _printed
    _printed = set()


def warn(warnings: Sequence[str]) -> None:
    """Print each machine warning on the console (stderr)."""
    for line in warnings:
        check = line.split(":")[0]
        if _printed is None or check not in _printed:
            print(f"bench-driver: warning: noisy machine: {line}", file=sys.stderr)
        if _printed is not None:
            _printed.add(check)


def warnings_of(environment: Mapping[str, Any]) -> list[str]:
    """The machine warnings an environment block holds ([] for records before version 1)."""
    found = environment.get("warnings") if isinstance(environment, Mapping) else None
    return [str(w) for w in found] if isinstance(found, list) else []


#: Environment fields that, when they differ between two sides of ``compare``, could explain a
#: difference in their figures.
COMPARED_FIELDS = (("host",), ("cpu", "model"), ("cpu", "logical_cores"), ("cpu", "usable_cores"),
                   ("frequency", "governors"), ("frequency", "turbo"), ("kernel", "release"),
                   ("cgroup", "cpu_quota_cores"), ("software", "python"), ("software", "torch"),
                   ("software", "cuda"), ("software", "cudnn"), ("software", "nccl"))


def compare_notes(baseline: Path, new: Path) -> list[str]:
    """What ``compare`` says beside its verdicts: the machine warnings of each side, and the
    environment fields in which the sides differ (either could explain a difference)."""
    (base_env, base_warnings), (new_env, new_warnings) = side_of(baseline), side_of(new)
    notes = [f"BASELINE {w}" for w in base_warnings] + [f"NEW {w}" for w in new_warnings]
    if base_env and new_env:
        for path in COMPARED_FIELDS:
            was, now = _field(base_env, path), _field(new_env, path)
            if was != now:
                notes.append(f"the environments differ: {'.'.join(path)} {was!r} -> {now!r}")
        was_gpus, now_gpus = _gpu_names(base_env), _gpu_names(new_env)
        if was_gpus != now_gpus:
            notes.append(f"the environments differ: gpus {was_gpus!r} -> {now_gpus!r}")
    return notes


def side_of(path: Path) -> tuple[Mapping[str, Any], list[str]]:
    """One side of ``compare``: its environment block and its machine warnings (as lines)."""
    from driver import results
    from driver.experiments import summary as sets

    if path.is_dir():
        path = next((path / n for n in ("summary.json", "experiment.json", "record.json")
                     if (path / n).is_file()), path / "record.json")
    try:
        schema = json.loads(path.read_text(encoding="utf-8")).get("schema")
    except (OSError, ValueError, AttributeError):
        return {}, []
    if schema == results.SCHEMA:
        record = results.load_record(path)
        return record.environment, [f"noisy machine: {w}" for w in record.warnings]
    found = [sets.SetSummary.load(path)] if schema == sets.SUMMARY_SCHEMA else \
        sets.ExperimentIndex.load(path).summaries() if schema == sets.EXPERIMENT_SCHEMA else []
    return (found[0].environment if found else {}), sets.noise_lines(found)


def _field(block: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = block
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _gpu_names(block: Mapping[str, Any]) -> list[Any]:
    return [(g.get("name"), g.get("driver_version")) for g in block.get("gpus") or ()
            if isinstance(g, Mapping)]
