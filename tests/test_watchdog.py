"""driver.watchdog with real processes: what it kills when the driver's end of its pipe closes
without a goodbye (as when the driver is SIGKILLed), and what it spares."""

from __future__ import annotations

import os
import subprocess
import time

from conftest import alive
from driver import proctree
from driver.watchdog import TOKEN_ENV, Watchdog


def start_watchdog(token: str) -> tuple[Watchdog, int]:
    watchdog = Watchdog.start(token)
    return watchdog, watchdog.pid


def sleeper(env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A process in a session of its own (as a setsid grandchild of a task is)."""
    return subprocess.Popen(["sleep", "60"], env={**os.environ, **(env or {})},
                            start_new_session=True)


def dead(proc: subprocess.Popen[bytes], limit_s: float = 10.0) -> bool:
    deadline = time.monotonic() + limit_s
    while alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(proc.pid)


def lose_the_driver(watchdog: Watchdog) -> None:
    """Close the driver's end without a goodbye: what the kernel does when the driver dies."""
    assert watchdog._fd is not None
    os.close(watchdog._fd)
    watchdog._fd = None


def test_it_kills_what_it_was_told_and_what_carries_the_token_and_spares_the_rest():
    watchdog, _ = start_watchdog("run-1")
    told, marked = sleeper(), sleeper({TOKEN_ENV: "run-1"})  # marked: never told of
    other_run, bystander = sleeper({TOKEN_ENV: "run-2"}), sleeper()
    try:
        watchdog.tell([told.pid])  # read before the EOF that follows it in the pipe
        lose_the_driver(watchdog)
        assert dead(told) and dead(marked)
        assert alive(other_run.pid) and alive(bystander.pid)
    finally:
        for proc in (told, marked, other_run, bystander):
            proc.kill()
            proc.wait()


def test_a_goodbye_kills_nothing():
    watchdog, pid = start_watchdog("run-3")
    told = sleeper({TOKEN_ENV: "run-3"})
    try:
        watchdog.tell([told.pid])
        watchdog.release()
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(pid) and alive(told.pid)  # the watchdog left, alone
    finally:
        told.kill()
        told.wait()
