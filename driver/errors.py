"""One error hierarchy, and the exit codes the CLI returns (:class:`ExitCode`, defined once).

The README's exit-code table and the ``--help`` epilog are generated from, or tested against,
:data:`ExitCode` and :data:`EXIT_CODE_MEANINGS`.
"""

from __future__ import annotations

import signal
from enum import IntEnum
from typing import Iterable


class ExitCode(IntEnum):
    """Every exit code of ``bench-driver`` (and of the task scripts that use driver.errors)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    COMMAND_FAILED = 4
    MISSING_METRIC = 5
    TIMEOUT = 6
    PLUGIN = 7
    REGRESSION = 8
    STORAGE = 9
    SIGHUP = 128 + signal.SIGHUP
    SIGINT = 128 + signal.SIGINT
    SIGQUIT = 128 + signal.SIGQUIT
    SIGUSR1 = 128 + signal.SIGUSR1
    SIGUSR2 = 128 + signal.SIGUSR2
    SIGTERM = 128 + signal.SIGTERM


#: What each exit code means, in the words of the README's table.
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "the run succeeded and every required metric was found",
    ExitCode.INTERNAL: "internal error in bench-driver (a bug)",
    ExitCode.USAGE: "command-line usage error",
    ExitCode.CONFIG: "configuration error (task config, --set, --gpus, paths...), or "
                     "`--strict-system` on a noisy machine: nothing was started",
    ExitCode.COMMAND_FAILED: "the benchmark command exited non-zero or was killed; what was scraped "
                             "is still written",
    ExitCode.MISSING_METRIC: "a required metric never matched (or overflowed); the others are "
                             "still written",
    ExitCode.TIMEOUT: "the run hit its timeout; the tree was ended and partial results written",
    ExitCode.PLUGIN: "plugin error (failed import, misspelt hook, two plugins claiming one name, a "
                     "plugin that raised or returned a wrong value); the other results are written",
    ExitCode.REGRESSION: "`compare` found a regression, or a metric of BASELINE missing from NEW",
    ExitCode.STORAGE: "results could not be written (disk full, no permission); what could be "
                      "written was",
    ExitCode.SIGHUP: "interrupted by SIGHUP",
    ExitCode.SIGINT: "interrupted by SIGINT (Ctrl-C)",
    ExitCode.SIGQUIT: "interrupted by SIGQUIT",
    ExitCode.SIGUSR1: "interrupted by SIGUSR1",
    ExitCode.SIGUSR2: "interrupted by SIGUSR2",
    ExitCode.SIGTERM: "interrupted by SIGTERM",
}

#: The signals a run handles as a request to stop: forwarded to the task, tree reaped, partial
#: results written, exit code 128 + the signal's number.
STOP_SIGNALS: tuple[str, ...] = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def exit_code_for_signal(name: str) -> ExitCode:
    """``ExitCode.SIGTERM`` for ``"SIGTERM"``; SIGINT's code for a name that is not a stop signal."""
    return ExitCode.__members__.get(name, ExitCode.SIGINT)


def help_epilog() -> str:
    """The ``--help`` text listing every exit code (generated, so it cannot drift)."""
    codes = ", ".join(f"{int(code)} {EXIT_CODE_MEANINGS[code].split(';')[0].split(' (')[0]}"
                      for code in ExitCode if code < 128)
    signals = "/".join(str(int(code)) for code in ExitCode if code >= 128)
    return f"Exit codes: {codes}; {signals} interrupted by a signal (128 + its number). " \
           f"See README.md."


class BenchDriverError(Exception):
    """Base of every error bench-driver reports as a message instead of a traceback."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(BenchDriverError):
    """Bad input found before anything ran: the message names file, task, key and value."""

    exit_code = ExitCode.CONFIG


class PluginError(BenchDriverError):
    """A plugin failed: it could not be loaded, misspelt a hook, claimed a name another plugin
    has, raised, or returned a value of the wrong kind. The message names the plugin, its file,
    the hook and the registered name."""

    exit_code = ExitCode.PLUGIN


class DataError(BenchDriverError):
    """A data file or data package a task needs is missing or does not hold a field."""

    exit_code = ExitCode.CONFIG


class StorageError(BenchDriverError):
    """A result could not be written (disk full, no permission): says which file and why."""

    exit_code = ExitCode.STORAGE


def did_you_mean(value: str, choices: Iterable[object]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of *choices*, or an empty string."""
    close = closest(value, choices)
    return f" (did you mean {close!r}?)" if close else ""


def closest(value: str, choices: Iterable[object]) -> str | None:
    """The one of *choices* that *value* is most likely a misspelling of; None if none is."""
    import difflib

    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None
