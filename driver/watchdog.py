"""The watchdog: a small process that ends the task's tree when the driver itself dies.

A SIGKILLed (or crashed) driver runs nothing any more: no handler, no ``finally``. So before the
command starts, the driver starts this watchdog, which reads a pipe whose write end only the
driver holds (close-on-exec: the task never inherits it). However the driver dies, the kernel
closes that end, and the watchdog reads EOF at once.

While the driver lives it tells the watchdog every process of the task it sees (the command as
soon as it is started, then the tree at every sample, ``--sample-interval``) and its own helpers
(the scraper's process). The watchdog notes each one's start time, process group and session. On
EOF without a goodbye it SIGKILLs, in rounds until a round finds nothing:

* every process it was told of that is still the same process (same pid *and* start time);
* every process started since the watchdog (so since the run began) in one of the task's
  sessions or process groups: children forked since the last sample (the command's own session
  catches most of them);
* every process that carries the run's token in its environment (``TOKEN_ENV``, given to the
  command and inherited by every descendant that keeps its environment, the way Jenkins marks a
  build's processes): found even after a setsid and an orphaning;
* every descendant of those (from one snapshot of /proc taken before the round's kills, while
  orphans are still linked to their parents).

Why a process, and this one: ``PR_SET_PDEATHSIG`` reaches only the direct child (not a setsid
grandchild), needs ``preexec_fn`` (which forces the slow fork path) and fires when the spawning
*thread* exits; a thread dies with the driver. The watchdog is a POSIX shell script: started
with vfork and exec it costs the driver about 1 ms (a fork of the driver would cost it ~20 ms of
copy-on-write faults on these VMs, a Python interpreter ~10 ms of CPU), then blocks in ``read``.
It is in a process group of its own (a signal to the driver's group, Ctrl-C included, does not
reach it), ignores the signals that stop the driver, holds no console, and is no part of the
task's tree (see ``proctree.task_tree``).
"""

from __future__ import annotations

import os
from typing import Iterable

from driver import proctree

BYE = b"bye\n"
TOKEN_ENV = "BENCH_DRIVER_RUN_TOKEN"  # in the command's environment: the run's processes carry it
_PIDS_PER_MESSAGE = 400  # under PIPE_BUF (4 KiB): a write from either thread stays whole

#: The watchdog itself (POSIX sh, no subshell while the driver lives). $1: NAME=VALUE of the
#: run's token; $2 $3: the driver's session and process group (never killed). stdin: lines of
#: task pids, "h PID" for a helper of the driver, "bye". Fields of /proc/PID/stat after the
#: command's name: $1 state, $2 ppid, $3 pgrp, $4 session, ${20} start time.
SCRIPT = r"""
trap '' INT TERM HUP QUIT USR1 USR2
mark="$1" spare=" $2 $3 $$ " known=" " groups=" " sessions=" "
learn() {  # $1: pid; $2: kin (its group and session are the task's too) or helper
    read -r st < "/proc/$1/stat" 2>/dev/null || return 0
    p=$1 kin=$2
    set -- ${st##*) }
    known="$known$p:${20} "
    [ "$kin" = kin ] || return 0
    case "$spare$groups" in *" $3 "*) ;; *) groups="$groups$3 " ;; esac
    case "$spare$sessions" in *" $4 "*) ;; *) sessions="$sessions$4 " ;; esac
}
while IFS= read -r line; do
    case $line in
        bye) exit 0 ;;
        "h "*) learn "${line#h }" helper ;;
        *) for p in $line; do learn "$p" kin; done ;;
    esac
done
read -r st < /proc/$$/stat; set -- ${st##*) }; since=${20}
victims() {  # the live processes of the run now, from one snapshot of /proc
    snap=
    for f in /proc/[0-9]*/stat; do
        read -r st < "$f" 2>/dev/null || continue
        p=${f#/proc/}; p=${p%/stat}; set -- ${st##*) }
        [ "$1" = Z ] || snap="$snap $p:$2:$3:$4:${20}"
    done
    found=" $(grep -l -z -x -F "$mark" /proc/[0-9]*/environ 2>/dev/null |
              sed 's,^/proc/,,; s,/environ$,,' | tr '\n' ' ')"
    for e in $snap; do
        IFS=:; set -- $e; IFS=' '
        case "$known" in *" $1:$5 "*) found="$found$1 "; continue ;; esac
        [ "$5" -ge "$since" ] || continue
        case "$groups$sessions" in *" $3 "*|*" $4 "*) found="$found$1 " ;; esac
    done
    grown=1
    while [ $grown = 1 ]; do  # and their descendants, to the last generation
        grown=0
        for e in $snap; do
            IFS=:; set -- $e; IFS=' '
            case "$found" in *" $1 "*) continue ;; *" $2 "*) found="$found$1 " grown=1 ;; esac
        done
    done
    for p in $found; do case "$spare" in *" $p "*) ;; *) echo "$p" ;; esac; done
}
round=0
while [ $round -lt 20 ]; do
    round=$((round + 1))
    v=$(victims)
    [ -n "$v" ] || exit 0
    for g in $groups; do kill -9 -- "-$g" 2>/dev/null; done
    kill -9 $v 2>/dev/null
    sleep 0.02 2>/dev/null || sleep 1
done
"""


class Watchdog:
    """The driver's side: tell it the task's processes; release it when the tree is reaped."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._fd: int | None = fd
        self._told: set[int] = set()

    @classmethod
    def start(cls, token: str) -> Watchdog:
        """Start the watchdog, before the command. *token* is the value of ``TOKEN_ENV`` in the
        command's environment."""
        read_fd, write_fd = os.pipe()  # both close-on-exec: the task never holds them
        argv = ["/bin/sh", "-c", SCRIPT, "bench-driver-watchdog", f"{TOKEN_ENV}={token}",
                str(os.getsid(0)), str(os.getpgrp())]
        try:
            pid = proctree.spawn_helper(argv, stdin=read_fd, own_group=True)
        finally:
            os.close(read_fd)
        os.set_blocking(write_fd, False)  # a stopped watchdog must never stall the driver
        return cls(pid, write_fd)

    def tell(self, pids: Iterable[int]) -> None:
        """Tell the watchdog of these processes of the task (those it was not told before)."""
        new = [p for p in pids if p not in self._told]
        self._told.update(new)
        for i in range(0, len(new), _PIDS_PER_MESSAGE):
            self._send(" ".join(map(str, new[i : i + _PIDS_PER_MESSAGE])).encode() + b"\n")

    def tell_helper(self, pid: int) -> None:
        """Tell the watchdog of a helper of the driver: killed with the tree if the driver dies
        (a scraper stuck in a regex never notices), its group and session spared."""
        self._send(b"h %d\n" % pid)

    def release(self) -> None:
        """The tree is reaped: say goodbye (the watchdog exits without killing anything)."""
        if self._fd is not None:
            self._send(BYE)
            os.close(self._fd)
            self._fd = None
        proctree.reap_helpers()

    def _send(self, message: bytes) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, message)
        except (BlockingIOError, BrokenPipeError):
            pass  # a stopped or killed watchdog: nothing to tell it
