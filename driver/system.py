"""``bench-driver system``: the machine's environment block and its noise checks, each with a
verdict and the fix (like ``pyperf system show``). It reads only; it changes nothing.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from driver.commands import Command

if TYPE_CHECKING:
    from driver.noise import Check
    from driver.plugins import Plugins


class SystemCommand(Command):
    """Print the environment and the noise checks; ``--json`` for the document itself."""

    help = "show this machine's environment and noise checks, with fixes (changes nothing)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true",
                            help="print the environment and the checks as one JSON document")

    def run(self, args: argparse.Namespace, plugins: Plugins) -> int:
        from driver.errors import ExitCode

        block, checks = machine_report()
        if args.json:
            print(json.dumps({**block, "checks": [vars_of(c) for c in checks]}, indent=2))
        else:
            print("\n".join(text_lines(block, checks)))
        return ExitCode.OK


def machine_report() -> tuple[dict[str, Any], list[Check]]:
    """The environment block of this machine (every GPU NVML sees) and every check's verdict."""
    from pathlib import Path

    from driver.environment import machine_now, system_root
    from driver.noise import machine_checks
    from driver.results import environment

    now = machine_now(system_root(), visible_gpus())
    block = {**environment(Path.cwd()),  # the block a run records, and what only a run reads:
             "frequency": now["frequency"], "load": now["load"], "gpus": now["gpus"]}
    return block, machine_checks(now)


def visible_gpus() -> list[int]:
    """Every GPU index NVML counts; [] when NVML is not available."""
    from driver.gpus.nvml import NvmlUnavailable, list_gpus, nvml_session

    try:
        with nvml_session() as nvml:
            return [gpu.index for gpu in list_gpus(nvml)]
    except NvmlUnavailable:
        return []


def vars_of(check: Check) -> dict[str, str]:
    """A check as a JSON object."""
    return {"name": check.name, "verdict": check.verdict, "seen": check.seen, "fix": check.fix}


def text_lines(block: Mapping[str, Any], checks: Sequence[Check]) -> list[str]:
    """Every field (``unknown`` where it cannot be read), then one line per check and fix."""
    lines = [f"bench-driver system (environment version {block.get('environment_version')})"]
    for key, value in block.items():
        if key == "environment_version":
            continue
        if isinstance(value, Mapping):
            lines.append(f"{key}:")
            lines += [f"  {k}: {_shown(v)}" for k, v in value.items()]
        elif key == "gpus":
            lines.append(f"gpus: {'none visible' if not value else ''}".rstrip())
            lines += [f"  {g.get('index')}: {_shown({k: v for k, v in g.items() if k != 'index'})}"
                      for g in value]
        else:
            lines.append(f"{key}: {_shown(value)}")
    lines.append("checks:")
    for check in checks:
        lines.append(f"  {check.verdict:<8} {check.name}: {check.seen}")
        if check.fix:
            lines.append(f"           fix: {check.fix}")
    noisy = sum(1 for c in checks if c.noisy)
    lines.append(f"verdict: {'noisy' if noisy else 'ok'} ({noisy} noisy check(s) of "
                 f"{len(checks)}); bench-driver run --strict-system refuses a noisy machine")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_shown(v)}" for k, v in value.items()) or "none"
    if value == "":
        return "none"
    return str(value)
