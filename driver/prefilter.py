"""Where the scraper's literals occur in a block of lines: the pre-search that lets it skip every
line no pattern can match.

Each distinct pattern is given one literal that all its matches contain (chosen by the scraper
among those :func:`driver.patterns.analyse` finds). For a block, :class:`LiteralSearch` gives the offsets
of every literal in it:

* *rare* literals (a few per block, the common case for most patterns of a config) are found all
  together in one pass by Hyperscan when the optional ``hyperscan`` package is installed
  (``pip install 'bench-driver[fast]'``): the pass costs about the same for 2 patterns or 20;
* *frequent* literals, and every literal without Hyperscan (the pure-Python path), are found with
  ``bytes.find``, stopping after CAP + 1 hits: past that the scraper runs the pattern itself over
  the whole block and needs no more offsets.

A rare literal that turns out frequent (more than CAP hits in a block) is moved to the ``find``
side (:meth:`LiteralSearch.demote`): every Hyperscan hit costs a call into Python.

Set ``BENCH_DRIVER_PREFILTER=python`` to use the pure-Python path even where Hyperscan is
installed (both give the same matches; the tests run both).
"""

from __future__ import annotations

import functools
import importlib.util
import mmap
import os
from typing import Any, Iterable, Mapping

from driver.errors import ConfigError
from driver.records import Record

CAP = 64  # up to this many hits in a block: the scraper searches just those lines
ENGINE_ENV = "BENCH_DRIVER_PREFILTER"
ENGINES = ("auto", "hyperscan", "python")
HYPERSCAN_AFTER_BYTES = 4 << 20

#: What the scraper scans: bytes, or a read-only memory map of the log.
Buffer = bytes | mmap.mmap


class Hits(Record):
    """Offsets of one literal in a block, in order; ``complete`` is False when the search
    stopped after CAP + 1 of them (more may follow)."""

    offsets: list[int]
    complete: bool


def engine_from(environ: Mapping[str, str]) -> str:
    """The engine ``$BENCH_DRIVER_PREFILTER`` asks for (default ``auto``); ConfigError if it is
    not one of ENGINES."""
    engine = environ.get(ENGINE_ENV, "auto").strip().lower() or "auto"
    if engine not in ENGINES:
        raise ConfigError(f"environment variable {ENGINE_ENV}={environ[ENGINE_ENV]!r} is not one"
                          f" of {', '.join(ENGINES)}; unset it or set it to 'python' to scrape"
                          " without Hyperscan")
    return engine


def _installed() -> bool:
    """Whether the ``hyperscan`` package is there, without importing it."""
    return importlib.util.find_spec("hyperscan") is not None


@functools.lru_cache(maxsize=None)
def hyperscan_available() -> bool:
    """Whether the optional ``hyperscan`` package imports and runs on this CPU."""
    try:
        _compile_literals([b"probe"])
    except Exception:  # ImportError, or hyperscan's error for an unsupported platform
        return False
    return True


class LiteralSearch:
    """The offsets of a changing set of literals in each block scanned.

    With ``auto``, Hyperscan is imported (about 15 ms) only once the output has reached
    HYPERSCAN_AFTER_BYTES: a short run keeps the driver's start-up and finish as cheap as before.
    """

    def __init__(self, engine: str | None = None) -> None:
        engine = engine or engine_from(os.environ)
        if engine not in ENGINES:
            raise ValueError(f"unknown prefilter engine {engine!r}; one of {ENGINES}")
        if engine == "hyperscan" and not hyperscan_available():
            raise ConfigError("the Hyperscan prefilter was asked for but the 'hyperscan' package"
                              " is not installed or does not run here: pip install"
                              " 'bench-driver[fast]', or use the pure-Python path")
        self._hyperscan = engine == "hyperscan" or (engine == "auto" and _installed())
        self._hyperscan_from = 0 if engine == "hyperscan" else HYPERSCAN_AFTER_BYTES
        self._scanned = 0
        self._literals: set[bytes] = set()
        self._frequent: set[bytes] = set()
        self._database: _Database | None = None
        self._stale = True

    @property
    def engine(self) -> str:
        """``hyperscan`` or ``python``: the engine used (with ``auto``, once output is large)."""
        return "hyperscan" if self._hyperscan else "python"

    def use(self, literals: Iterable[bytes]) -> None:
        """Search exactly these literals from now on."""
        wanted = set(literals)
        if wanted != self._literals:
            self._literals, self._stale = wanted, True

    def demote(self, literal: bytes) -> None:
        """*literal* is frequent: find it with ``bytes.find`` (stopping at CAP + 1) from now on."""
        if literal not in self._frequent:
            self._frequent.add(literal)
            self._stale = True

    def is_frequent(self, literal: bytes) -> bool:
        """Whether *literal* was demoted."""
        return literal in self._frequent

    def find(self, buf: Buffer, start: int, end: int) -> dict[bytes, Hits]:
        """Offsets of every literal in ``buf[start:end]``."""
        before, self._scanned = self._scanned, self._scanned + end - start
        if self._stale or before < self._hyperscan_from <= self._scanned:
            self._rebuild()
        found = self._database.find(buf, start, end) if self._database is not None else {}
        for literal in self._literals.difference(found):
            offsets = find_up_to(buf, literal, start, end, CAP + 1)
            found[literal] = Hits(offsets, len(offsets) <= CAP)
        return found

    def _rebuild(self) -> None:
        self._stale, self._database = False, None
        rare = sorted(lit for lit in self._literals - self._frequent if b"\0" not in lit)
        # (the bindings pass literals as C strings: one with a NUL byte would be cut short)
        if self._hyperscan and rare and self._scanned >= self._hyperscan_from:
            try:
                self._database = _Database(rare)
            except Exception:  # auto on a CPU or build Hyperscan refuses: the pure-Python path
                if self._hyperscan_from == 0:
                    raise
                self._hyperscan = False


class _Database:
    """Hyperscan's literal matcher for a fixed set of literals, one pass per block."""

    def __init__(self, literals: list[bytes]) -> None:
        self.literals = literals
        self._db = _compile_literals(literals)

    def find(self, buf: Buffer, start: int, end: int) -> dict[bytes, Hits]:
        ends: list[list[int]] = [[] for _ in self.literals]

        def on_match(pattern_id: int, _from: int, to: int, _flags: int, _context: Any) -> None:
            ends[pattern_id].append(to)

        with memoryview(buf) as whole, whole[start:end] as block:  # no copy; both released,
            self._db.scan(block, match_event_handler=on_match)  # so the mmap can be closed
        return {lit: Hits([start + to - len(lit) for to in found], True)
                for lit, found in zip(self.literals, ends)}


def _compile_literals(literals: list[bytes]) -> Any:
    import hyperscan

    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=literals, ids=list(range(len(literals))), elements=len(literals),
               flags=[0] * len(literals), literal=True)
    return db


def find_up_to(buf: Buffer, literal: bytes, start: int, end: int, limit: int) -> list[int]:
    """Offsets of *literal* in ``buf[start:end]``, no more than *limit* of them: a frequent
    literal is settled within a few hundred bytes instead of a pass over the block."""
    found: list[int] = []
    find, at = buf.find, start
    while len(found) < limit:
        at = find(literal, at, end)
        if at < 0:
            break
        found.append(at)
        at += len(literal)
    return found
