"""What sampling costs, and whether it catches a short memory spike. Prints ratios, asserts nothing.

1. Overhead: the sampling thread's own CPU time (``SamplingThread.busy_s``) over wall time, as a
   percentage of one core, with a 10-process task tree, at the default interval (and at 10 ms for
   comparison); also the GPU sampler's cost (8 GPUs) through the real pynvml over the C stand-in
   for libnvidia-ml.so.1 (needs gcc): the binding's and the sampler's work, not the NVIDIA driver's.
2. Spike capture: a grandchild allocates 100 MB, holds it 5 ms and frees it, then either exits at
   once or lives on for 0.3 s. The peak the driver reports (polled VmHWM alone; with the ``wait4``
   kernel figure; plain RSS polling as the old driver did) is divided by the "Maximum resident set
   size" of ``/usr/bin/time -v`` running the same command (``apt-get install -y time``).

    python benchmarks/sampler_overhead.py [--seconds 5] [--trials 10]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driver import proctree  # noqa: E402
from driver.sampling import DEFAULT_INTERVAL_S, RunExit, Sampler, SamplingThread, task_pids  # noqa: E402
from plugins.cpu_memory import CpuMemorySampler  # noqa: E402

# root python -> 3 x (sh -> 2 x sleep): 10 processes
TREE = (
    "import subprocess, sys\n"
    "kids = [subprocess.Popen(['sh', '-c', 'sleep 600 & sleep 600 & wait']) for _ in range(3)]\n"
    "sys.stdin.read()\n"
)

SPIKE = (
    "import subprocess, sys\n"
    "worker = '''\n"
    "import sys, time\n"
    "b = b'\\\\x01' * 100_000_000\n"
    "time.sleep(0.005)\n"
    "del b\n"
    "time.sleep(float(sys.argv[1]))\n"
    "'''\n"
    "sys.exit(subprocess.call([sys.executable, '-c', worker, sys.argv[1]]))\n"
)

KIB_PER_MIB = 1024.0


def measure(samplers: list[Sampler], interval_s: float, seconds: float,
            folder: Path) -> tuple[SamplingThread, float, int]:
    """(the sampling thread, wall seconds, processes seen) while a 10-process tree sleeps."""
    tree = subprocess.Popen([sys.executable, "-c", TREE], stdin=subprocess.PIPE, start_new_session=True)
    while len(task_pids()) < 10:  # the tree is still starting
        time.sleep(0.01)
    processes = len(task_pids())
    thread = SamplingThread(samplers, interval_s, folder / "timeline.csv", task_pids)
    start = time.monotonic()
    thread.start()
    time.sleep(seconds)
    thread.stop()
    wall = time.monotonic() - start
    os.killpg(tree.pid, signal.SIGKILL)
    tree.communicate()
    reap_orphans()
    return thread, wall, processes


def overhead(samplers: list[Sampler], interval_s: float, seconds: float) -> tuple[float, float, int]:
    """(% of one core, ms of CPU per sample, processes seen) while a 10-process tree sleeps."""
    with tempfile.TemporaryDirectory() as folder:
        thread, wall, processes = measure(samplers, interval_s, seconds, Path(folder))
    return 100.0 * thread.busy_s / wall, 1000.0 * thread.busy_s / thread.samples, processes


def reap_orphans() -> None:
    """The killed tree's sleeps were re-parented to this subreaper: reap them."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def stub_gpu_sampler(folder: Path, gpus: int) -> Sampler:
    """The GPU sampler through the real pynvml over the C stand-in for libnvidia-ml.so.1
    (tests/nvml_stub, built here with gcc): the binding's and the sampler's own cost, not the
    NVIDIA driver's (benchmarks/gpu_check.py measures that on a real GPU)."""
    from driver.sampling import SamplingSettings
    from plugins.gpu_nvml import make_sampler
    from tests.nvml_stub import SCENARIO_ENV, Scenario, build, preload

    libs = build(folder / "libs")
    preload(libs)  # before pynvml loads "libnvidia-ml.so.1"
    scenario = Scenario(folder)
    for index in range(gpus):
        scenario.gpu(name="NVIDIA Stub", total_mib=81559, reserved_mib=530, util=50)
        scenario.process(index, pid=os.getpid(), used_mib=1000)  # listed, not in the task tree
    os.environ.update({SCENARIO_ENV: scenario.env(libs)[SCENARIO_ENV]})
    os.environ.pop("BENCH_DRIVER_NVML_MODULE", None)
    sampler = make_sampler(SamplingSettings(gpus=tuple(range(gpus)),
                                            gpu_devices=tuple(scenario.uuids)))
    assert sampler is not None
    return sampler


def gpu_overhead(folder: Path, seconds: float, gpus: int = 8) -> None:
    """The GPU sampler beside the CPU sampler: the ticking thread's cost (the CPU sampler and the
    hand-over) and the GPU sampler's own thread, per tick."""
    gpu = stub_gpu_sampler(folder, gpus)
    thread, wall, _ = measure([CpuMemorySampler(), gpu], DEFAULT_INTERVAL_S, seconds, folder)
    gpu_s, reads = thread.lane_costs()["gpu_nvml"]
    ticking_s = thread.busy_s - gpu_s
    print(f"  cpu_memory + gpu_nvml ({gpus} GPUs, real pynvml over the C stand-in), every "
          f"{DEFAULT_INTERVAL_S * 1000:.0f} ms: {100.0 * thread.busy_s / wall:5.2f}% of a core in all; "
          f"ticking thread {1000.0 * ticking_s / thread.samples:.3f} ms per tick, GPU thread "
          f"{1000.0 * gpu_s / max(reads, 1):.3f} ms per read ({reads} reads, {thread.samples} ticks)")


def with_sampler(linger_s: float) -> tuple[float, float, float]:
    """Run the spike under the driver's sampler: (polled VmHWM, with wait4, RSS sum) in MiB."""
    floor = proctree.own_hwm_kib()
    sampler = CpuMemorySampler()
    thread = SamplingThread([sampler], DEFAULT_INTERVAL_S, None, task_pids)
    thread.start()
    task = subprocess.Popen([sys.executable, "-c", SPIKE, str(linger_s)])
    _, _, usage = os.wait4(task.pid, 0)
    task.returncode = 0
    thread.stop()
    polled = sampler.summary(RunExit())
    kernel = sampler.summary(RunExit((usage.ru_maxrss,), floor))
    return (
        polled.details["peak_process_mib"],
        kernel.details["peak_process_mib"],
        polled.details["peak_tree_sum_mib"],
    )


def with_gnu_time(linger_s: float) -> float:
    """Maximum resident set size of the same command under /usr/bin/time -v, in MiB."""
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", SPIKE, str(linger_s)],
        capture_output=True, text=True, check=True,
    )
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert found, done.stderr
    return int(found.group(1)) / KIB_PER_MIB


def spikes(trials: int) -> None:
    print(f"\nspike capture: 100 MB held 5 ms in a grandchild, {trials} trials per row; "
          f"ratios to /usr/bin/time -v (1.00 = the kernel's peak)")
    print(f"{'grandchild after the spike':28} {'VmHWM polled':>13} {'with wait4':>11} "
          f"{'RSS polled':>11} {'caught (ratio >= 0.97)':>24}")
    for linger_s, label in ((0.0, "exits at once"), (0.3, "lives on 0.3 s")):
        ratios: list[tuple[float, float, float]] = []
        for _ in range(trials):
            reference = with_gnu_time(linger_s)
            polled, kernel, rss = with_sampler(linger_s)
            ratios.append((polled / reference, kernel / reference, rss / reference))
        medians = [statistics.median(r[i] for r in ratios) for i in range(3)]
        caught = [sum(r[i] >= 0.97 for r in ratios) for i in range(3)]
        print(f"{label:28} {medians[0]:13.2f} {medians[1]:11.2f} {medians[2]:11.2f} "
              f"{', '.join(f'{c}/{trials}' for c in caught):>24}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per overhead measurement")
    parser.add_argument("--trials", type=int, default=10, help="per spike scenario")
    args = parser.parse_args()
    if not proctree.become_subreaper():
        sys.exit("needs Linux (prctl PR_SET_CHILD_SUBREAPER)")
    if not shutil.which("/usr/bin/time"):
        sys.exit("needs GNU time: apt-get install -y time")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; sampling thread CPU time "
          f"over wall time, % of one core, {args.seconds:.0f} s each")
    for interval in (DEFAULT_INTERVAL_S, 0.01):
        pct, per_sample, procs = overhead([CpuMemorySampler()], interval, args.seconds)
        print(f"  cpu_memory, {procs}-process tree, every {interval * 1000:3.0f} ms: "
              f"{pct:5.2f}% of a core ({per_sample:.3f} ms per sample)")
    with tempfile.TemporaryDirectory() as folder:
        gpu_overhead(Path(folder), args.seconds)
    spikes(args.trials)


if __name__ == "__main__":
    main()
