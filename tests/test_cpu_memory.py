"""The CPU memory sampler (plugins/cpu_memory.py) on real processes that allocate known memory.

The tree is built as the driver builds it: a small *launcher* process plays the driver (it spawns
the task and reaps it with ``os.wait4``, so its kernel figures are not raised by this test
process's own size, see RunExit.spawn_floor_kib); the *task* starts a *worker* grandchild, which
allocates on command. Every step is synchronised through the pipes, never by sleeping.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import TickCounter
from driver import proctree
from driver.sampling import RunExit, SamplingThread
from plugins.cpu_memory import CpuMemorySampler

MB = 1_000_000
KIB_PER_MIB = 1024.0

SCRIPT = r'''
import os, subprocess, sys, time

def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])

role = sys.argv[1]
if role == "launcher":  # plays the driver: a small parent that reaps the task with wait4
    print("floor", status_kib("VmHWM:"), flush=True)
    task = subprocess.Popen([sys.executable, __file__, "task"])
    _, _, usage = os.wait4(task.pid, 0)
    print("maxrss", usage.ru_maxrss, flush=True)
elif role == "task":  # starts the worker and waits for it, as a training script's launcher does
    worker = subprocess.Popen([sys.executable, __file__, "worker"])
    print("task", status_kib("VmRSS:"), flush=True)
    sys.exit(worker.wait())
else:  # the worker obeys one command per line on stdin
    print("ready", status_kib("VmRSS:"), flush=True)
    held = None
    for line in sys.stdin:
        command, *args = line.split()
        if command == "hold":
            held = b"\x01" * int(args[0])  # every page written, so all of it is resident
            print("held", status_kib("VmRSS:"), flush=True)
        elif command == "spike":
            spike = b"\x01" * int(args[0])
            time.sleep(0.005)  # the workload's shape (5 ms), not synchronisation
            del spike
            print("spiked", status_kib("VmHWM:"), flush=True)
        elif command == "exit":
            break
'''


class MemoryTree:
    """launcher -> task -> worker, talking through the launcher's stdin and stdout."""

    def __init__(self, folder: Path) -> None:
        script = folder / "memtree.py"
        script.write_text(SCRIPT)
        self.launcher = subprocess.Popen(
            [sys.executable, str(script), "launcher"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.lines: dict[str, int] = {}
        self.floor_kib = self.expect("floor")
        self.task_kib = self.expect("task")
        self.ready_kib = self.expect("ready")

    def pids(self) -> list[int]:
        """The task's processes, as the driver lists them (the launcher's descendants)."""
        return proctree.descendants(self.launcher.pid)

    def send(self, *commands: str) -> None:
        assert self.launcher.stdin is not None
        self.launcher.stdin.write("".join(c + "\n" for c in commands))
        self.launcher.stdin.flush()

    def expect(self, tag: str) -> int:
        """The number on the next line tagged *tag* (lines of the three processes interleave)."""
        assert self.launcher.stdout is not None
        while tag not in self.lines:
            line = self.launcher.stdout.readline()
            assert line, f"the tree ended before saying {tag!r}"
            key, value = line.split()
            self.lines[key] = int(value)
        return self.lines.pop(tag)

    def finish(self) -> RunExit:
        """Let the worker exit; the kernel's account of the task from the launcher's wait4."""
        self.send("exit")
        maxrss = self.expect("maxrss")
        self.close()
        return RunExit(maxrss_kib=(maxrss,), spawn_floor_kib=self.floor_kib)

    def close(self) -> None:
        for stream in (self.launcher.stdin, self.launcher.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.launcher.wait()


@pytest.fixture
def memory_tree(tmp_path: Path) -> Iterator[MemoryTree]:
    tree = MemoryTree(tmp_path)
    yield tree
    tree.close()


def sample(tree: MemoryTree, sampler: CpuMemorySampler) -> tuple[SamplingThread, TickCounter]:
    ticks = TickCounter()
    thread = SamplingThread([sampler], 0.1, None, tree.pids, ticks.tick)
    thread.start()
    return thread, ticks


def mib(kib: float) -> float:
    return kib / KIB_PER_MIB


def test_grandchild_holding_200_mb_is_the_peak_and_the_mean(memory_tree: MemoryTree) -> None:
    memory_tree.send(f"hold {200 * MB}")
    held_kib = memory_tree.expect("held")
    assert held_kib - memory_tree.ready_kib >= 200 * MB / 1024 * 0.99  # the worker did allocate
    sampler = CpuMemorySampler()
    thread, ticks = sample(memory_tree, sampler)
    ticks.wait(5)
    thread.stop()  # every tick, the last one included, saw the memory held
    summary = sampler.summary(memory_tree.finish())
    expected_tree = mib(memory_tree.task_kib + held_kib)  # both processes alive together
    assert summary.metrics["cpu_memory_usage"] == pytest.approx(expected_tree, rel=0.03)
    assert summary.details["peak_process_mib"] == pytest.approx(mib(held_kib), rel=0.03)
    assert summary.details["kernel_maxrss_mib"] == pytest.approx(mib(held_kib), rel=0.03)
    assert summary.metrics["cpu_memory_usage_mean"] == pytest.approx(expected_tree, rel=0.03)
    assert summary.details["max_processes"] == 2


def test_5_ms_spike_in_a_live_grandchild_is_caught_by_polling(memory_tree: MemoryTree) -> None:
    sampler = CpuMemorySampler()
    thread, ticks = sample(memory_tree, sampler)
    ticks.wait(1)
    memory_tree.send(f"spike {100 * MB}")
    spike_hwm_kib = memory_tree.expect("spiked")
    ticks.wait(2)  # a whole tick after the spike, while the worker still lives
    thread.stop()
    memory_tree.finish()
    summary = sampler.summary(RunExit())  # the polled figures alone
    assert mib(spike_hwm_kib) >= 100 * MB / 2**20
    assert summary.details["peak_process_mib"] == pytest.approx(mib(spike_hwm_kib), rel=0.03)
    assert summary.metrics["cpu_memory_usage"] >= summary.details["peak_process_mib"]


def test_5_ms_spike_of_a_grandchild_that_exits_at_once_is_caught_by_wait4(
    memory_tree: MemoryTree,
) -> None:
    sampler = CpuMemorySampler()
    thread, ticks = sample(memory_tree, sampler)
    ticks.wait(1)
    memory_tree.send(f"spike {100 * MB}", "exit")  # gone before the next tick, most likely
    spike_hwm_kib = memory_tree.expect("spiked")
    run_exit = memory_tree.finish()
    thread.stop()
    assert run_exit.maxrss_kib[0] > run_exit.spawn_floor_kib  # an exact kernel figure
    summary = sampler.summary(run_exit)
    assert summary.details["kernel_maxrss_mib"] == pytest.approx(mib(spike_hwm_kib), rel=0.03)
    assert summary.details["peak_process_mib"] == pytest.approx(mib(spike_hwm_kib), rel=0.03)
    # A tick that fell inside the spike also saw the task beside the worker.
    peak = summary.metrics["cpu_memory_usage"]
    assert mib(spike_hwm_kib) * 0.97 <= peak <= mib(memory_tree.task_kib + spike_hwm_kib) * 1.03


def test_mean_lies_between_idle_and_peak(memory_tree: MemoryTree) -> None:
    sampler = CpuMemorySampler()
    thread, ticks = sample(memory_tree, sampler)
    ticks.wait(3)
    memory_tree.send(f"hold {150 * MB}")
    memory_tree.expect("held")
    ticks.wait(3)
    thread.stop()
    summary = sampler.summary(memory_tree.finish())
    idle = mib(memory_tree.task_kib + memory_tree.ready_kib)
    mean, peak = summary.metrics["cpu_memory_usage_mean"], summary.metrics["cpu_memory_usage"]
    assert idle * 0.97 < mean < peak
    assert peak >= 150 * MB / 2**20
