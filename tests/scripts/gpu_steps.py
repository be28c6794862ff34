"""A GPU test workload: runs the steps named on its command line, in order, then prints ``speed: 1``.

It "uses" GPU memory the way the NVML stand-in (tests/nvml_stub) sees it: a scenario lists a
process by ``pid_file``, and the workload writes its pid there. Steps:

* ``pid:PATH``    write this process's pid to PATH (atomically)
* ``wait:PATH``   wait until PATH exists (the stand-in creates ``seen_file`` when it listed us)
* ``touch:PATH``  create PATH (``lost_file``: the GPU falls off the bus; ``block_file``: NVML hangs)
* ``rm:PATH``     remove PATH
* ``hold:S``      stay alive S seconds (the workload's own duration, not synchronisation)
* ``env``         print CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER
* ``child``       run the remaining steps in a child process (the task's tree grows) and wait
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DEADLINE_S = 30.0


def wait(path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"gpu_steps: {path} did not appear within {DEADLINE_S:g} s")
        time.sleep(0.005)


def run(step: str) -> None:
    kind, _, arg = step.partition(":")
    path = Path(arg)
    if kind == "pid":
        partial = path.with_name(path.name + ".partial")
        partial.write_text(str(os.getpid()))
        partial.replace(path)
    elif kind == "wait":
        wait(path)
    elif kind == "touch":
        path.touch()
    elif kind == "rm":
        path.unlink(missing_ok=True)
    elif kind == "hold":
        time.sleep(float(arg))
    elif kind == "env":
        names = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
        print("env:", " ".join(os.environ.get(n, "<unset>") for n in names), flush=True)
    else:
        sys.exit(f"gpu_steps: unknown step {step!r}")


def main(steps: list[str]) -> int:
    for n, step in enumerate(steps):
        if step == "child":
            return subprocess.call([sys.executable, __file__, *steps[n + 1:]])
        run(step)
    print("speed: 1", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
