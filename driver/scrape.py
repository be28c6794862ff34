"""Scrape metric values from a task's output as it streams, without keeping the log in memory.

Semantics: each pattern is searched in each line (as ``re.search(pattern, line)``); the first
match on a line counts, and its single capture group (or the group named ``value``) is the value.
Patterns are compiled once, as bytes with ``re.MULTILINE``, and run over large blocks of whole
lines. A pattern that cannot match a line break (checked once, from its parse tree) runs as
``(?:PATTERN)[^\\n]*``: the regex engine keeps its fast literal-prefix scan and the suffix makes
it take the first match of each line only. Other patterns are searched line by line: exact, slower.

Numbers: ``float()`` of the captured text, so signs, decimals, exponents and leading zeros parse
(``-0.5``, ``1.5e-05``, ``08``). ``nan`` and ``inf`` parse too and are counted as *non-finite*:
they are kept out of the reduction (and out of JSON, which has no NaN) and reported in the run
record; a metric whose values are all non-finite counts as not found. Text that is not a number
is counted as *unparsed*, with the first few examples kept for the record.

Collisions: when two patterns capture the very same number on a line (``total time cost: 5``
matched by both ``total time cost: (\\S+)`` and ``time cost: (\\S+)``), it belongs to the pattern
whose match starts first on the line (it saw more of it: the more specific one). Patterns whose
matches start at the same place all keep it.
"""

from __future__ import annotations

import math
import mmap
import re
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from driver.config import MetricSpec
from driver.patterns import leading_caret, literal_runs, looks_past_its_line, may_match_newline

NEWLINE = b"\n"
MAX_UNPARSED_EXAMPLES = 5
MAX_LINE_BYTES = 64 << 20  # a "line" longer than this is scraped in pieces
SPARSE_OCCURRENCES = 64  # up to this many literal hits in a block: search just those lines


@dataclass
class MetricMatches:
    """Everything scraped for one metric: finite values in log order and what was skipped."""

    values: list[float] = field(default_factory=list)
    matches: int = 0
    nonfinite: int = 0
    unparsed: int = 0
    unparsed_examples: list[str] = field(default_factory=list)

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
        finite = [v for v in values if math.isfinite(v)]
        self.nonfinite += len(values) - len(finite)
        self.values.extend(finite)

    def _unparsed(self, text: bytes | None) -> None:
        self.unparsed += 1
        if len(self.unparsed_examples) < MAX_UNPARSED_EXAMPLES:
            self.unparsed_examples.append((text or b"").decode("utf-8", "replace"))


#: What the scraper scans: bytes, or a read-only memory map of the log (same find/rfind, and the
#: re module reads both without copying).
Buffer = bytes | mmap.mmap

#: Offsets of a pattern's literal in the range being scanned; None for a pattern without one.
Hits = list[int] | None


class _Pattern:
    """One metric's compiled pattern and the fastest exact way to scan a range of whole lines.

    * ``literal``: the longest literal every match contains. ``bytes.count`` of it is far faster
      than any regex, so a block without it is skipped, and a block with a few occurrences is
      searched on those lines only.
    * ``fast``: ``(?:PATTERN)[^\\n]*`` for a pattern that cannot cross a line break; ``findall``
      then takes the first match of every line in one C-level pass. A leading ``^`` would stop the
      regex engine's literal-prefix scan, so ``^REST`` runs as ``\\n(?:REST)[^\\n]*`` started one
      byte early, on the newline that ends the previous line.
    * otherwise the pattern is searched line by line.
    """

    def __init__(self, spec: MetricSpec) -> None:
        self.exact = spec.compile()
        self.group = self.exact.groupindex.get("value", 1)
        self.literal: bytes | None = None  # chosen by the Scraper among literal_runs()
        self.fast: re.Pattern[bytes] | None = None
        self.anchored = False
        # A lookbehind, \A or \Z would see past the line inside a block: search a copy of it.
        self.isolated = looks_past_its_line(spec.pattern)
        can_be_empty = self.exact.search(b"") is not None  # would match at every line break
        if not (self.isolated or can_be_empty or may_match_newline(spec.pattern)):
            body = self.exact.pattern
            self.anchored = leading_caret(body)
            source = b"\n(?:" + body[1:] + b")" if self.anchored else b"(?:" + body + b")"
            try:
                self.fast = re.compile(source + b"[^\n]*", re.MULTILINE)
            except re.error:  # e.g. global inline flags, which must stay at the very start
                self.fast, self.anchored = None, False

    def texts(self, buf: Buffer, start: int, end: int, hits: Hits) -> list[bytes | None]:
        """The captured text of the first match on each line of ``buf[start:end]``.

        ``start`` is 0 or just after a newline; ``end`` is just after a newline. *hits* are the
        offsets of this pattern's literal in the range (at most SPARSE_OCCURRENCES + 1 of them).
        """
        how = self._plan(start, hits)
        if how == "fast":
            assert self.fast is not None
            found = self.fast.findall(buf, start - 1 if self.anchored else start, end)
            return [t[self.group - 1] or None for t in found] if self.fast.groups > 1 else found
        return [text for _, text in self._located(how, buf, start, end, hits)]

    def positioned(
        self, buf: Buffer, start: int, end: int, hits: Hits
    ) -> list[tuple[int, bytes | None]]:
        """Like :meth:`texts`, with the offset in *buf* where each captured number starts."""
        how = self._plan(start, hits)
        if how == "fast":
            assert self.fast is not None
            g, begin = self.group, start - 1 if self.anchored else start
            return [(m.start(g), m.group(g)) for m in self.fast.finditer(buf, begin, end)]
        return self._located(how, buf, start, end, hits)

    def _plan(self, start: int, hits: Hits) -> str:
        if hits is not None:
            if not hits:
                return "none"
            if len(hits) <= SPARSE_OCCURRENCES or self.fast is None:
                return "sparse"
        if self.fast is None or (self.anchored and start == 0):
            return "lines"
        return "fast"

    def _located(
        self, how: str, buf: Buffer, start: int, end: int, hits: Hits
    ) -> list[tuple[int, bytes | None]]:
        if how == "sparse":
            assert hits is not None
            return self._sparse(buf, start, end, hits)
        return self._per_line(buf, start, end) if how == "lines" else []

    def _sparse(
        self, buf: Buffer, start: int, end: int, hits: list[int]
    ) -> list[tuple[int, bytes | None]]:
        """Search only the lines that hold the literal (all of them, or past the first hits)."""
        assert self.literal is not None
        out = []
        find, rfind = buf.find, buf.rfind
        line_end = start
        for at in _all_hits(buf, self.literal, start, end, hits):
            if at < line_end:
                continue  # another hit on a line already searched
            line_start = rfind(NEWLINE, start, at) + 1 or start
            line_end = find(NEWLINE, at, end) + 1 or end
            found = self._search_line(buf, line_start, line_end)
            if found is not None:
                out.append(found)
        return out

    def _search_line(self, buf: Buffer, start: int, end: int) -> tuple[int, bytes | None] | None:
        """``(offset of the captured number, its text)`` of the line ``buf[start:end]``."""
        if self.isolated:
            m = self.exact.search(buf[start:end])
            return None if m is None else (start + m.start(self.group), m.group(self.group))
        m = self.exact.search(buf, start, end)
        return None if m is None else (m.start(self.group), m.group(self.group))

    def _per_line(self, buf: Buffer, start: int, end: int) -> list[tuple[int, bytes | None]]:
        out = []
        find = buf.find
        line_start = start
        while line_start < end:
            line_end = find(NEWLINE, line_start, end) + 1 or end
            found = self._search_line(buf, line_start, line_end)
            if found is not None:
                out.append(found)
            line_start = line_end
        return out

    def start_on_line(self, buf: Buffer, at: int) -> int:
        """Where this pattern's match starts on the line holding offset *at*."""
        line_start = buf.rfind(NEWLINE, 0, at) + 1
        line_end = buf.find(NEWLINE, at) + 1 or len(buf)
        if self.isolated:
            m = self.exact.search(buf[line_start:line_end])
            return line_start + m.start() if m is not None else -1
        m = self.exact.search(buf, line_start, line_end)
        return m.start() if m is not None else -1


class Scraper:
    """Feed it output chunks of any size; it scans whole lines and keeps only the partial last one."""

    def __init__(self, metrics: Sequence[MetricSpec]) -> None:
        self.metrics = tuple(metrics)
        self._patterns = [_Pattern(m) for m in self.metrics]
        _choose_literals(self._patterns)
        self.found = {m.name: MetricMatches() for m in self.metrics}
        self._sinks = [self.found[m.name] for m in self.metrics]
        self._pending = b""

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
        hits: dict[bytes | None, Hits] = {None: None}
        for p in self._patterns:  # one search per distinct literal, shared by its patterns
            if p.literal is not None and p.literal not in hits:
                hits[p.literal] = _find_up_to(buf, p.literal, start, end, SPARSE_OCCURRENCES + 1)
        located = [hits[p.literal] for p in self._patterns]
        texts = [p.texts(buf, start, end, h) for p, h in zip(self._patterns, located)]
        if len(texts) > 1:
            self._resolve_collisions(buf, start, end, texts, located)
        for sink, found in zip(self._sinks, texts):
            if found:
                sink.add(found)

    def _resolve_collisions(
        self, buf: Buffer, start: int, end: int, texts: list[list[bytes | None]], hits: list[Hits]
    ) -> None:
        """Where two patterns captured the same number, keep it for the earlier-starting match.

        Two patterns can only have collided if they captured some equal text, which is rare and
        cheap to test; only then are match positions computed, for those patterns alone.
        """
        distinct = [set(t) for t in texts]
        pairs = [
            (i, j)
            for i in range(len(texts))
            for j in range(i + 1, len(texts))
            if not distinct[i].isdisjoint(distinct[j])
        ]
        if not pairs:
            return
        involved = {i for pair in pairs for i in pair}
        found = {i: self._patterns[i].positioned(buf, start, end, hits[i]) for i in involved}
        lost: dict[int, set[int]] = {i: set() for i in involved}
        for i, j in pairs:
            # the same number: the same text captured at the same place (not merely overlapping)
            shared = {at for at, _ in set(found[i]) & set(found[j])}
            for at in shared:
                start_i = self._patterns[i].start_on_line(buf, at)
                start_j = self._patterns[j].start_on_line(buf, at)
                if start_i < start_j:
                    lost[j].add(at)
                elif start_j < start_i:
                    lost[i].add(at)
        for i, gone in lost.items():
            if gone:
                texts[i] = [text for at, text in found[i] if at not in gone]


def _find_up_to(buf: Buffer, literal: bytes, start: int, end: int, limit: int) -> list[int]:
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


def _all_hits(buf: Buffer, literal: bytes, start: int, end: int, first: list[int]) -> Iterator[int]:
    """*first*, then the literal's further offsets if *first* stopped at its limit."""
    yield from first
    if len(first) > SPARSE_OCCURRENCES:
        at = first[-1] + len(literal)
        while (at := buf.find(literal, at, end)) >= 0:
            yield at
            at += len(literal)


def _choose_literals(patterns: Sequence[_Pattern]) -> None:
    """Give each pattern the literal run most other patterns share (then the longest), so that
    e.g. three ``^\\[Epoch \\d+\\] ...`` patterns are found with one search for ``[Epoch ``."""
    runs = [literal_runs(p.exact.pattern, p.exact.flags) for p in patterns]
    shared: dict[bytes, int] = {}
    for found in runs:
        for run in set(found):
            shared[run] = shared.get(run, 0) + 1
    for pattern, found in zip(patterns, runs):
        if found:
            pattern.literal = max(found, key=lambda run: (shared[run], len(run)))
