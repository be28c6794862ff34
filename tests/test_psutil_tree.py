"""The psutil process reader (driver.proctree_psutil), forced on Linux, against the /proc one.

The same real workload runs through the real CLI with each reader: a tree of 3 processes that
hold 100, 150 and 200 MB for 2.5 s. Their peak figures must agree within 2%.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driver import proctree
from driver.errors import ConfigError

TREE = r'''
import subprocess, sys, time
MB = 1_000_000
def hold(mb):
    return b"\x01" * (mb * MB)  # every page written: all of it resident
if len(sys.argv) > 1:  # a child: hold, tell the parent, keep holding
    held = hold(int(sys.argv[1]))
    print("held", flush=True)
    sys.stdin.read()
    sys.exit(0)
kids = [subprocess.Popen([sys.executable, __file__, str(mb)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True) for mb in (150, 200)]
held = hold(100)
for kid in kids:
    assert kid.stdout.readline() == "held\n"
time.sleep(2.5)  # the workload's shape: 3 processes holding 450 MB for 2.5 s
for kid in kids:
    kid.stdin.close()
    kid.wait()
print("done")
'''


def _memory(cli, tmp_path: Path, reader: str) -> dict:
    run = cli("--task-name", "tree", "--runs-dir", f"runs-{reader}", "--quiet",
              env={proctree.READER_ENV: reader})
    assert run.returncode == 0, run.stderr
    record = json.loads(next((tmp_path / f"runs-{reader}").glob("*/*/record.json")).read_text())
    return record["memory"]["cpu_memory"]


def test_psutil_and_proc_agree_on_a_tree_of_three(tmp_path, write_config, cli):
    (tmp_path / "tree.py").write_text(TREE)
    write_config("""
        [tasks.tree]
        command_to_execute = "{python} tree.py"
        patterns = ['(done)']
        metrics = ['done']
        compute_method = ['last']
        optional_metrics = ['done']
    """)
    proc, ps = _memory(cli, tmp_path, "proc"), _memory(cli, tmp_path, "psutil")
    assert proc["max_processes"] == ps["max_processes"] >= 3  # (and /bin/sh, where it forks)
    assert proc["peak_tree_sum_mib"] > 450 * 1e6 / 2**20  # all three were seen holding
    for key in ("peak_mib", "peak_tree_sum_mib", "peak_process_mib"):
        assert abs(ps[key] - proc[key]) <= 0.02 * proc[key], (key, proc, ps)
    print(json.dumps({"proc": proc, "psutil": ps}))  # the figures, with pytest -s
    assert ps["peak_process_source"] in ("kernel ru_maxrss", "polled RSS (psutil)")


def test_forced_psutil_reads_this_tree(monkeypatch):
    monkeypatch.setattr(proctree, "_psutil", True)
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        assert child.pid in proctree.children(os.getpid())
        mem = proctree.memory(child.pid)
        assert mem is not None and mem.rss_kib == mem.hwm_kib > 1000
        found = proctree.stat(child.pid)
        assert found is not None and found.ppid == os.getpid() and found.state in "RS"
        assert found.session == os.getsid(0)
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()
    assert proctree.memory(child.pid) is None and proctree.stat(child.pid) is None


def test_an_unknown_reader_is_refused(monkeypatch):
    monkeypatch.setenv(proctree.READER_ENV, "psutils")
    with pytest.raises(ConfigError, match=r"BENCH_DRIVER_PROCESS_READER='psutils'.*did you mean"):
        proctree.reader()
