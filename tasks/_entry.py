"""The entry point the task scripts share: a driver error becomes one line and its exit code."""

from __future__ import annotations

import sys
from typing import Callable

from driver.errors import BenchDriverError


def guarded(prog: str, work: Callable[[], object]) -> int:
    """Run *work*; 0 when it finishes, else ``prog: error: MESSAGE`` on stderr and the error's
    documented exit code (3 for configuration and data errors), never a traceback."""
    try:
        work()
    except BenchDriverError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
