"""The shape of a subcommand a plugin contributes (``bench_driver_register_commands``)."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driver.plugins import Plugins


class Command(ABC):
    """``bench-driver NAME ...``: ``help`` is its line in ``bench-driver --help``."""

    help: str = ""
    description: str | None = None  # the text of ``bench-driver NAME --help`` (default: help)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's own arguments (none by default)."""

    @abstractmethod
    def run(self, args: argparse.Namespace, plugins: Plugins) -> int:
        """Do the work; return the exit code (a :class:`driver.errors.ExitCode`). Raise a
        :class:`driver.errors.BenchDriverError` for a message without a traceback."""
