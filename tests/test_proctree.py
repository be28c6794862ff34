"""driver.proctree: the driver becomes its task's subreaper (orphans re-parent to it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: In a fresh interpreter: become a subreaper (PREPARE runs first), start a child that forks a
#: grandchild and exits at once; the orphaned grandchild prints its new parent.
ORPHAN_PARENT = r"""
import os, subprocess, sys
{prepare}
from driver import proctree
assert proctree.become_subreaper()
child = subprocess.Popen([sys.executable, "-c",
    "import os, time\nif os.fork() == 0:\n    time.sleep(0.3)\n    print(os.getppid())\n"
    "else:\n    os._exit(0)"], stdout=subprocess.PIPE, text=True)
child.wait()
print(os.getpid(), child.stdout.read().strip())
os.waitpid(-1, 0)  # the grandchild, now ours
"""

BROKEN_CTYPES_CORE = """
import ctypes, _ctypes  # ctypes keeps its own reference to dlopen
def refuse(*args):
    raise TypeError("changed API")
_ctypes.dlopen = refuse
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")
@pytest.mark.parametrize("prepare", ["", BROKEN_CTYPES_CORE], ids=["_ctypes", "ctypes fallback"])
def test_an_orphaned_grandchild_re_parents_to_the_driver(prepare: str) -> None:
    done = subprocess.run([sys.executable, "-c", ORPHAN_PARENT.format(prepare=prepare)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    driver_pid, orphan_parent = done.stdout.split()
    assert orphan_parent == driver_pid
