"""Scrape metric values from a task's output as it streams, without keeping the log in memory.

Semantics: each pattern is searched in each line (as ``re.search(pattern, line)``); the first
match on a line counts, and its single capture group (or the group named ``value``) is the value.
A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (the line breaks of ``bytes.splitlines``),
and is searched with one ``\\n`` after it: ``$`` matches before a CRLF, and each carriage-return
update of a progress bar is a line of its own (the terminal showed each; ``last`` gets the final
one). Patterns are compiled once, as bytes with ``re.MULTILINE``, and run over blocks of whole
lines; driver.matcher picks the fastest exact way for each, driver.prefilter finds the lines
that may match. A line longer than MAX_LINE_BYTES is scraped in pieces (docs/scraping.md).

Numbers: ``float()`` of the captured text, so signs, decimals, exponents and leading zeros parse
(``-0.5``, ``1.5e-05``, ``08``). ``nan`` and ``inf`` parse too and are counted as *non-finite*:
they are kept out of the reduction (and out of JSON, which has no NaN) and reported in the run
record; a metric whose values are all non-finite counts as not found. Text that is not a number
is counted as *unparsed*, with the first few examples kept for the record.

Collisions: when two patterns capture the very same number on a line (``total time cost: 5``
matched by both ``total time cost: (\\S+)`` and ``time cost: (\\S+)``), it belongs to the pattern
whose match starts first on the line (it saw more of it: the more specific one). Patterns whose
matches start at the same place all keep it; so do metrics that share one pattern, which is
scanned once for all of them.
"""

from __future__ import annotations

import math
import mmap
import re
from typing import Sequence

from driver.config import MetricSpec
from driver.matcher import Found, LineMatcher
from driver.patterns import MIN_LITERAL
from driver import prefilter
from driver.prefilter import Buffer, Hits, LiteralSearch, find_up_to

NEWLINE = b"\n"
CR = b"\r"
MAX_UNPARSED_EXAMPLES = 5
MAX_LINE_BYTES = 64 << 20  # a "line" longer than this is scraped in pieces
BLOCK_BYTES = 1 << 20  # scanned at a time: hit lists stay short, the block stays in cache
SAMPLE_BYTES = 1 << 20  # literals are chosen from their counts in this much of the output

__all__ = ["Buffer", "MAX_LINE_BYTES", "MetricMatches", "Scraper"]


class MetricMatches:
    """Everything scraped for one metric: finite values in log order and what was skipped.

    (A plain class, not a dataclass: creating a dataclass costs the driver's start-up ~3M
    instructions; driver.scrape_deltas reads the fields through ``vars()``.)"""

    def __init__(self, values: list[float] | None = None, matches: int = 0, nonfinite: int = 0,
                 unparsed: int = 0, unparsed_examples: list[str] | None = None) -> None:
        self.values = [] if values is None else values
        self.matches = matches
        self.nonfinite = nonfinite
        self.unparsed = unparsed
        self.unparsed_examples = [] if unparsed_examples is None else unparsed_examples

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"MetricMatches({fields})"

    def add(self, texts: Sequence[bytes | None]) -> None:
        """Parse captured texts and keep the finite numbers."""
        self.matches += len(texts)
        try:
            values = list(map(float, texts))  # type: ignore[arg-type]
        except (ValueError, TypeError):
            values = []
            for text in texts:
                try:
                    values.append(float(text))  # type: ignore[arg-type]
                except (ValueError, TypeError):
                    self._unparsed(text)
        # (a sum is finite only if every value is: the check costs one C loop in the usual case)
        finite = values if math.isfinite(sum(values)) else [v for v in values if math.isfinite(v)]
        self.nonfinite += len(values) - len(finite)
        self.values.extend(finite)

    def merge(self, other: MetricMatches) -> None:
        """Add what *other* found (the same lines, parsed once for several metrics)."""
        self.values.extend(other.values)
        self.matches += other.matches
        self.nonfinite += other.nonfinite
        self.unparsed += other.unparsed
        room = MAX_UNPARSED_EXAMPLES - len(self.unparsed_examples)
        self.unparsed_examples.extend(other.unparsed_examples[:max(room, 0)])

    def _unparsed(self, text: bytes | None) -> None:
        self.unparsed += 1
        if len(self.unparsed_examples) < MAX_UNPARSED_EXAMPLES:
            self.unparsed_examples.append((text or b"").decode("utf-8", "replace"))


class Scraper:
    """Feed it output chunks of any size; it scans whole lines and keeps only the partial last one.

    *prefilter* is ``auto`` (Hyperscan when installed), ``hyperscan`` or ``python``; by default
    ``$BENCH_DRIVER_PREFILTER``, else ``auto`` (driver.prefilter).
    """

    def __init__(self, metrics: Sequence[MetricSpec], prefilter: str | None = None) -> None:
        self.metrics = tuple(metrics)
        self.found = {m.name: MetricMatches() for m in self.metrics}
        sinks: dict[str, list[MetricMatches]] = {}
        compiled: dict[str, re.Pattern[bytes]] = {}
        for m in self.metrics:
            sinks.setdefault(m.pattern, []).append(self.found[m.name])
            compiled.setdefault(m.pattern, m.compile())
        self._matchers = [LineMatcher(compiled[p]) for p in sinks]  # one per distinct pattern
        self._sinks = list(sinks.values())
        self._search = LiteralSearch(prefilter)
        self._chooser = _LiteralChooser(self._matchers, self._search)
        self._pending = b""

    @property
    def prefilter(self) -> str:
        """The prefilter engine in use: ``hyperscan`` or ``python``."""
        return self._search.engine

    def feed(self, data: bytes) -> None:
        """Scan every complete line in ``pending + data`` in place; keep the unfinished tail.

        The line that joins the pending tail to *data* is scanned on its own, so the chunk itself
        is never copied.
        """
        cut = data.rfind(NEWLINE)
        if cut < 0:
            self._pending += data
            if len(self._pending) > MAX_LINE_BYTES:
                self._scan(self._pending, 0, len(self._pending))
                self._pending = b""
            return
        first = data.find(NEWLINE) + 1
        if self._pending:
            joined = self._pending + data[:first]
            self._scan(joined, 0, len(joined))
            if first < cut + 1:
                self._scan(data, first, cut + 1)
        else:
            self._scan(data, 0, cut + 1)
        self._pending = data[cut + 1 :]

    def scan_lines(self, buf: Buffer, start: int, end: int) -> None:
        """Scrape the whole lines in ``buf[start:end]`` in place (bytes, or a memory map):
        *start* is 0 or follows a newline, *end* follows one (or ends the output)."""
        self._scan(buf, start, end)

    def close(self) -> dict[str, MetricMatches]:
        """Scan the last line (even without a final newline) and return the matches per metric."""
        if self._pending:
            last = self._pending + NEWLINE
            self._scan(last, 0, len(last))
            self._pending = b""
        return self.found

    def _scan(self, buf: Buffer, start: int, end: int) -> None:
        while start < end:
            cut = end if end - start <= BLOCK_BYTES else _block_end(buf, start, end)
            self._scan_block(buf, start, cut)
            _release(buf, start, cut)
            start = cut

    def _scan_block(self, buf: Buffer, start: int, end: int) -> None:
        if buf.find(CR, start, end) >= 0 or (start and buf[start - 1] == CR[0]):
            buf, start, end = _carriage_returns_as_newlines(buf, start, end)  # (also a block
            # cut after a lone \r: a line's start must follow a newline byte)
        self._chooser.before(buf, start, end)
        hits = self._search.find(buf, start, end)
        located = [None if m.literal is None else hits[m.literal] for m in self._matchers]
        texts = [m.texts(buf, start, end, h) for m, h in zip(self._matchers, located)]
        if len(texts) > 1:
            self._resolve_collisions(buf, start, end, texts, located)
        for sinks, found in zip(self._sinks, texts):
            if found:
                _deliver(sinks, found)
        self._chooser.after(buf, start, end, hits)

    def _resolve_collisions(self, buf: Buffer, start: int, end: int,
                            texts: list[list[bytes | None]], hits: list[Hits | None]) -> None:
        """Where two patterns captured the same number, keep it for the earlier-starting match.

        Two patterns can only have collided if they captured some equal text, which is rare and
        cheap to test; only then are match positions computed, for those patterns alone. Linear
        in the matches: one dictionary per pattern involved.
        """
        numbers = [set(t).difference((None, b"")) if t else set() for t in texts]
        pairs = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))
                 if numbers[i] and numbers[j] and not numbers[i].isdisjoint(numbers[j])]
        if not pairs:
            return
        involved = {i for pair in pairs for i in pair}
        found = {i: self._matchers[i].positioned(buf, start, end, hits[i]) for i in involved}
        starts = {i: _match_starts(found[i]) for i in involved}
        lost: dict[int, set[tuple[int, bytes]]] = {i: set() for i in involved}
        for i, j in pairs:
            # the same number: the same text captured at the same place (not merely overlapping)
            mine, theirs = starts[i], starts[j]
            for key in mine.keys() & theirs.keys():
                if mine[key] < theirs[key]:
                    lost[j].add(key)
                elif theirs[key] < mine[key]:
                    lost[i].add(key)
        for i, gone in lost.items():
            if gone:
                texts[i] = [text for at, text, _ in found[i] if (at, text) not in gone]


class _LiteralChooser:
    """Gives each pattern the literal, among those all its matches contain, that is rarest in
    the output: counted in the first SAMPLE_BYTES, and again whenever the chosen one turns out
    frequent. A literal on every line (``INFO:root:``) is thus never the one searched for."""

    def __init__(self, matchers: Sequence[LineMatcher], search: LiteralSearch) -> None:
        self.matchers = [m for m in matchers if m.runs]
        self.search = search
        self.sampled = 0
        self.counts: dict[bytes, float] = {}
        self.shared: dict[bytes, int] = {}  # how many patterns contain each literal
        for m in self.matchers:
            m.runs = _trimmed(m.runs)
            for run in set(m.runs):
                self.shared[run] = self.shared.get(run, 0) + 1

    def before(self, buf: Buffer, start: int, end: int) -> None:
        """Count every candidate literal while sampling, and choose from the counts so far."""
        if self.sampled >= SAMPLE_BYTES or not self.matchers:
            return
        self.sampled += end - start
        for run in self.shared:
            self.counts[run] = self.counts.get(run, 0) + _estimated_hits(buf, run, start, end)
        for m in self.matchers:
            self._choose(m, self.counts)
        self.search.use(m.literal for m in self.matchers if m.literal is not None)

    def after(self, buf: Buffer, start: int, end: int, hits: dict[bytes, Hits]) -> None:
        """Demote the literals that had more than CAP hits here and choose again for them."""
        frequent = [lit for lit, h in hits.items()
                    if len(h.offsets) > prefilter.CAP and not self.search.is_frequent(lit)]
        for literal in frequent:
            self.search.demote(literal)
            here = {run: _estimated_hits(buf, run, start, end)
                    for m in self.matchers if m.literal == literal for run in m.runs}
            for m in self.matchers:
                if m.literal == literal:
                    self._choose(m, here)
        if frequent:
            self.search.use(m.literal for m in self.matchers if m.literal is not None)

    def _choose(self, matcher: LineMatcher, counts: dict[bytes, float]) -> None:
        # fewest hits; then shared by most patterns (one search serves them all); then longest
        matcher.literal = min(matcher.runs, key=lambda run: (
            counts.get(run, 0), -self.shared[run], -len(run)))


def _block_end(buf: Buffer, start: int, end: int) -> int:
    """Where the block from *start* ends: after the last line break within BLOCK_BYTES, else
    after the first one beyond (a ``\r\n`` is never cut in two)."""
    limit = start + BLOCK_BYTES
    at = max(buf.rfind(NEWLINE, start, limit), buf.rfind(CR, start, limit))
    if at < 0:
        ahead = [i for i in (buf.find(NEWLINE, limit, end), buf.find(CR, limit, end)) if i >= 0]
        at = min(ahead, default=end - 1)
    cut = at + 1
    return cut + 1 if cut < end and buf[at] == CR[0] and buf[cut] == NEWLINE[0] else cut


def _trimmed(runs: list[bytes]) -> list[bytes]:
    """The literals without their leading and trailing blanks, where enough is left: still in
    every match, and both ``bytes.find`` and Hyperscan skip faster past a rarer end byte."""
    return [run.strip(b" \t") if len(run.strip(b" \t")) >= MIN_LITERAL else run for run in runs]


def _estimated_hits(buf: Buffer, literal: bytes, start: int, end: int) -> float:
    """How many times *literal* is in ``buf[start:end]``: counted up to CAP + 1, extrapolated
    from how far those reached beyond that (a literal on every line is settled in a few KiB)."""
    found = find_up_to(buf, literal, start, end, prefilter.CAP + 1)
    if len(found) <= prefilter.CAP:
        return len(found)
    return len(found) * (end - start) / (found[-1] + len(literal) - start)


def _release(buf: Buffer, start: int, end: int) -> None:
    """Unmap the scanned pages of a memory map from this process (the page cache keeps them,
    and they come back on the next read): the driver's RSS stays flat however much of the log
    the caller mapped at once."""
    if isinstance(buf, mmap.mmap) and hasattr(buf, "madvise"):
        first, last = start - start % mmap.PAGESIZE, end - end % mmap.PAGESIZE
        if last > first:
            buf.madvise(mmap.MADV_DONTNEED, first, last - first)


def _carriage_returns_as_newlines(buf: Buffer, start: int, end: int) -> tuple[bytes, int, int]:
    """A copy of ``buf[start:end]`` with each ``\\r\\n`` and lone ``\\r`` turned into ``\\n``,
    after one ``\\n`` (so that a line's start always follows a newline byte)."""
    text = bytes(buf[start:end]).replace(b"\r\n", NEWLINE).replace(CR, NEWLINE)
    copy = NEWLINE + text
    return copy, 1, len(copy)


def _match_starts(found: list[Found]) -> dict[tuple[int, bytes], int]:
    """``{(where the number is, its text): where its match starts}``, numbers only."""
    return {(at, text): begin for at, text, begin in found if text}


def _deliver(sinks: list[MetricMatches], texts: list[bytes | None]) -> None:
    """Parse once, give to every metric of the pattern."""
    if len(sinks) == 1:
        sinks[0].add(texts)
        return
    batch = MetricMatches()
    batch.add(texts)
    for sink in sinks:
        sink.merge(batch)
