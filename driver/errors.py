"""One error hierarchy; each class carries the exit code the CLI returns for it.

Exit codes (documented in README.md):

====  =============================================================
0     the run succeeded and every required metric was found
1     internal error in bench-driver itself (a bug: please report)
2     command-line usage error (argparse)
3     configuration error: task_config.toml, --set, --gpus ...; nothing was started
4     the benchmark command exited non-zero (or was killed by a signal)
5     the command succeeded but a required metric never matched
6     the run hit its timeout
7     plugin error: a plugin failed to load or two plugins claim one name
8     ``compare`` found a regression
130   interrupted by SIGINT (Ctrl-C); 143 by SIGTERM
====  =============================================================
"""

from __future__ import annotations

from typing import Iterable

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_COMMAND_FAILED = 4
EXIT_MISSING_METRIC = 5
EXIT_TIMEOUT = 6
EXIT_PLUGIN = 7
EXIT_REGRESSION = 8
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class BenchDriverError(Exception):
    """Base of every error bench-driver reports as a message instead of a traceback."""

    exit_code = EXIT_INTERNAL


class ConfigError(BenchDriverError):
    """Bad input found before anything ran: the message names file, task, key and value."""

    exit_code = EXIT_CONFIG


class PluginError(BenchDriverError):
    """A plugin could not be loaded, misspelt a hook, or claimed a name another plugin has."""

    exit_code = EXIT_PLUGIN


class DataError(BenchDriverError):
    """A data file or data package a task needs is missing or does not hold a field."""

    exit_code = EXIT_CONFIG


def did_you_mean(value: str, choices: Iterable[object]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of *choices*, or an empty string."""
    import difflib

    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
