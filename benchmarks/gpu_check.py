"""GPU telemetry against a real NVIDIA GPU: prepared for a GPU machine, it needs one to run.

1. Accuracy: a task allocates a known amount with torch on cuda:0 (the GPU the driver hands it,
   ``--gpu``), holds it, and reports ``torch.cuda.max_memory_reserved()`` and nvidia-smi's reading
   of its own process; a second task only creates the CUDA context. The driver runs both. Printed:
   ``gpu_memory_usage_max`` against reserved + the context (the context task's figure minus what
   it reserved), and against nvidia-smi's per-process reading.
2. Cost: the GPU sampler's reads on the real driver, wall and CPU time per read (one read is one
   tick's work for the GPU thread: memory, utilisation, the process list, for every GPU).

    python benchmarks/gpu_check.py [--gpu 0] [--mib 2048] [--hold-s 2] [--reads 200]
    python benchmarks/gpu_check.py --sampler-only    # part 2 only; needs no torch

Needs torch with CUDA (part 1), nvidia-smi, nvidia-ml-py. Prints ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import driver_command, driver_env  # noqa: E402
from driver.gpus.assign import assign_gpus  # noqa: E402
from driver.sampling import RunExit, SamplingSettings  # noqa: E402
from plugins.gpu_nvml import make_sampler  # noqa: E402

ALLOCATE = '''
import os, subprocess, sys, time
import torch
mib, hold_s = int(sys.argv[1]), float(sys.argv[2])
held = torch.empty(mib << 20, dtype=torch.uint8, device="cuda:0") if mib else torch.zeros(1, device="cuda:0")
torch.cuda.synchronize()
smi = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                      "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
mine = [line.split(",")[1].strip() for line in smi.splitlines()
        if line.split(",")[0].strip() == str(os.getpid())]
time.sleep(hold_s)  # several sampling ticks with the memory held
print(f"reserved_mib: {torch.cuda.max_memory_reserved() / 2**20}")
print(f"smi_mib: {mine[0] if mine else -1}", flush=True)  # -1: nvidia-smi did not list it
'''


def task_config(mib: int, hold_s: float) -> str:
    """The two tasks: ``alloc`` holds *mib* MiB, ``context`` only the CUDA context."""
    tasks = []
    for name, amount in (("alloc", mib), ("context", 0)):
        tasks.append(
            f"[tasks.{name}]\n"
            f"command_to_execute = '{{python}} allocate.py {amount} {hold_s}'\n"
            "num_gpus = 1\n"
            "patterns = ['reserved_mib: (\\S+)', 'smi_mib: (\\S+)']\n"
            "metrics = ['reserved_mib', 'smi_mib']\n"
            "compute_method = ['last', 'last']\n")
    return "\n".join(tasks)


def compare(alloc: Mapping[str, float], context: Mapping[str, float]) -> list[str]:
    """The ratio lines from the two flat results."""
    context_mib = context["context.gpu_memory_usage_max"] - context["context.reserved_mib"]
    expected = alloc["alloc.reserved_mib"] + context_mib
    measured = alloc["alloc.gpu_memory_usage_max"]
    smi = alloc.get("alloc.smi_mib", -1.0)
    smi_ratio = f"{measured / smi:.3f}x" if smi > 0 else "n/a (nvidia-smi did not list the task)"
    smi_ok = smi > 0 and abs(measured / smi - 1) <= 0.02
    return [
        f"torch reserved {alloc['alloc.reserved_mib']:.1f} MiB + CUDA context {context_mib:.1f} MiB "
        f"= {expected:.1f} MiB; gpu_memory_usage_max {measured:.1f} MiB; nvidia-smi {smi:.1f} MiB",
        f"RATIO gpu_memory_vs_torch (gpu_memory_usage_max over reserved + context) = "
        f"{measured / expected:.3f}x (target 1.00 +- 0.02): "
        f"{'PASS' if abs(measured / expected - 1) <= 0.02 else 'FAIL'}",
        f"RATIO gpu_memory_vs_nvidia_smi (gpu_memory_usage_max over nvidia-smi's process "
        f"reading) = {smi_ratio} (target 1.00 +- 0.02): {'PASS' if smi_ok else 'FAIL'}",
    ]


def run_task(folder: Path, task: str, gpu: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Run *task* through the driver on *gpu*; its flat result and the GPU sampler's record."""
    output = folder / f"{task}.json"
    argv = [*driver_command(), "--config", str(folder / "task_config.toml"), "--task-name", task,
            "--gpus", str(gpu), "--output", str(output), "--runs-dir", str(folder / "runs")]
    done = subprocess.run(argv, cwd=folder, env=driver_env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{task}: the driver exited {done.returncode}:\n{done.stdout}{done.stderr}")
    record = json.loads(sorted((folder / "runs" / task).glob("*/record.json"))[-1].read_text())
    return json.loads(output.read_text()), record["memory"].get("gpu_nvml", {})


def accuracy(gpu: int, mib: int, hold_s: float) -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); "
                 "--sampler-only measures the sampler's cost without torch")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "allocate.py").write_text(ALLOCATE)
        (folder / "task_config.toml").write_text(task_config(mib, hold_s))
        context, _ = run_task(folder, "context", gpu)
        alloc, details = run_task(folder, "alloc", gpu)
    print(f"\n1. accuracy: {mib} MiB held {hold_s:g} s on GPU {gpu}")
    for gpu_details in details.get("gpus", []):
        keys = ("name", "source", "memory_query", "process_query", "reserved_mib", "task_max_mib",
                "used_max_mib")
        print("   " + ", ".join(f"{k}={gpu_details.get(k)}" for k in keys))
    print(f"   driver {details.get('driver_version')}")
    for line in compare(alloc, context):
        print("   " + line)


def sampler_cost(gpu: int, reads: int) -> None:
    """Time the GPU sampler's reads on this machine's NVML (in this process)."""
    assignment = assign_gpus(1, [gpu], os.environ)
    sampler = make_sampler(SamplingSettings(gpus=assignment.indices,
                                            gpu_devices=assignment.devices))
    assert sampler is not None
    sampler.start()
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    for _ in range(reads):
        sampler.sample([os.getpid()])
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    sampler.stop()
    summary = sampler.summary(RunExit())
    print(f"\n2. cost: {reads} reads of GPU {gpu} ({summary.details['gpus'][0]['name']}, driver "
          f"{summary.details['driver_version']}): {1000 * wall / reads:.3f} ms wall, "
          f"{1000 * cpu / reads:.3f} ms CPU per read; at the default 100 ms tick that is "
          f"{wall / reads / 0.1 * 100:.2f}% of the GPU thread's time")
    for error in summary.errors:
        print(f"   ! {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", type=int, default=0, help="NVML index of the GPU to check")
    parser.add_argument("--mib", type=int, default=2048, help="MiB the task allocates")
    parser.add_argument("--hold-s", type=float, default=2.0, help="how long it holds them")
    parser.add_argument("--reads", type=int, default=200, help="sampler reads to time")
    parser.add_argument("--sampler-only", action="store_true", help="only time the sampler")
    args = parser.parse_args()
    if not args.sampler_only:
        accuracy(args.gpu, args.mib, args.hold_s)
    sampler_cost(args.gpu, args.reads)


if __name__ == "__main__":
    main()
