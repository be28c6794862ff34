"""One distinct pattern, compiled for the fastest exact way to find its first match on each line
of a block (the scraper's semantics: ``re.search`` per line; see driver.scrape).

Three ways, chosen per block from the hits of the pattern's literal (driver.prefilter):

* ``sparse``: search only the lines that hold the literal (few hits, or a pattern the regex
  engine could not otherwise scan quickly);
* ``fast``: ``(?:PATTERN)[^\\n]*`` with ``findall`` over the whole block, for a pattern that
  cannot cross a line break: one C-level pass takes the first match of every line. A leading
  ``^`` would stop the engine's literal-prefix scan, so ``^REST`` runs as ``\\n(?:REST)[^\\n]*``
  started one byte early, on the newline that ends the previous line;
* ``lines``: ``re.search`` line by line (exact, slowest: patterns that may cross a line break
  and have no literal).
"""

from __future__ import annotations

import re
from typing import Iterator

from driver.patterns import PatternFacts, analyse, split_global_flags
from driver import prefilter
from driver.prefilter import Buffer, Hits

NEWLINE = b"\n"

#: A first match on a line: (offset of the captured text, the text, offset where the match starts).
Found = tuple[int, bytes | None, int]


class LineMatcher:
    """One pattern and its compiled variants; ``literal`` is chosen by the scraper."""

    def __init__(self, exact: re.Pattern[bytes]) -> None:
        self.exact = exact
        self.group = exact.groupindex.get("value", 1)
        facts = analyse(exact.pattern, exact.flags)
        self.runs = list(facts.literals)  # literals every match contains
        self.literal: bytes | None = None
        # A lookbehind, \A or \Z would see past the line inside a block: search a copy of it.
        self.isolated = facts.looks_past_its_line
        self.fast, self.anchored = self._compile_fast(facts)
        # Without a leading literal, findall tries a match at every offset: hits are cheaper.
        self.scans_quickly = self.anchored or facts.starts_with_literal

    def _compile_fast(self, facts: PatternFacts) -> tuple[re.Pattern[bytes] | None, bool]:
        can_be_empty = self.exact.search(b"") is not None  # would match at every line break
        if facts.looks_past_its_line or can_be_empty or facts.may_match_newline:
            return None, False
        flags, body = split_global_flags(self.exact.pattern)
        anchored = facts.leading_caret
        wrapped = rb"\n(?:" + body[1:] + b")" if anchored else b"(?:" + body + b")"
        try:  # (escaped newlines: a verbose pattern would ignore a raw one)
            return re.compile(flags + wrapped + rb"[^\n]*", self.exact.flags), anchored
        except re.error:  # e.g. a second group of global flags
            return None, False

    def texts(self, buf: Buffer, start: int, end: int, hits: Hits | None) -> list[bytes | None]:
        """The captured text of the first match on each line of ``buf[start:end]``.

        ``start`` is 0 or just after a newline; ``end`` is just after a newline. *hits* are the
        offsets of this pattern's literal in the range (None: it has no literal).
        """
        how = self._plan(hits)
        if how == "fast":
            assert self.fast is not None
            head, begin = self._fast_head(buf, start, end)
            found = self.fast.findall(buf, begin, end)
            if self.fast.groups > 1:
                found = [t[self.group - 1] or None for t in found]
            return [f[1] for f in head] + found
        return [text for _, text, _ in self._located(how, buf, start, end, hits)]

    def positioned(self, buf: Buffer, start: int, end: int, hits: Hits | None) -> list[Found]:
        """Like :meth:`texts`, with where each captured text and its match start in *buf*."""
        how = self._plan(hits)
        if how != "fast":
            return self._located(how, buf, start, end, hits)
        assert self.fast is not None
        head, begin = self._fast_head(buf, start, end)
        g, shift = self.group, int(self.anchored)  # an anchored match starts on the newline
        return head + [(m.start(g), m.group(g), m.start() + shift)
                       for m in self.fast.finditer(buf, begin, end)]

    def _plan(self, hits: Hits | None) -> str:
        if hits is not None:
            if not hits.offsets:
                return "none"
            if len(hits.offsets) <= prefilter.CAP or self.fast is None or not self.scans_quickly:
                return "sparse"
        return "lines" if self.fast is None else "fast"

    def _fast_head(self, buf: Buffer, start: int, end: int) -> tuple[list[Found], int]:
        """Where findall starts: one byte early when anchored, after a first line searched on
        its own when there is no byte before it."""
        if not self.anchored:
            return [], start
        if start > 0:
            return [], start - 1
        line_end = buf.find(NEWLINE, 0, end) + 1 or end
        found = self._search_line(buf, 0, line_end)
        return ([] if found is None else [found]), line_end - 1

    def _located(self, how: str, buf: Buffer, start: int, end: int,
                 hits: Hits | None) -> list[Found]:
        if how == "sparse":
            assert hits is not None and self.literal is not None
            return self._sparse(buf, start, end, _all_hits(buf, self.literal, end, hits))
        return self._per_line(buf, start, end) if how == "lines" else []

    def _sparse(self, buf: Buffer, start: int, end: int, hits: Iterator[int]) -> list[Found]:
        """Search only the lines that hold the literal."""
        out = []
        find, rfind = buf.find, buf.rfind
        line_end = start
        for at in hits:
            if at < line_end:
                continue  # another hit on a line already searched
            line_start = rfind(NEWLINE, start, at) + 1 or start
            line_end = find(NEWLINE, at, end) + 1 or end
            found = self._search_line(buf, line_start, line_end)
            if found is not None:
                out.append(found)
        return out

    def _per_line(self, buf: Buffer, start: int, end: int) -> list[Found]:
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

    def _search_line(self, buf: Buffer, start: int, end: int) -> Found | None:
        """The first match on the line ``buf[start:end]``, or None."""
        g = self.group
        if self.isolated:
            m = self.exact.search(buf[start:end])
            return None if m is None else (start + m.start(g), m.group(g), start + m.start())
        m = self.exact.search(buf, start, end)
        return None if m is None else (m.start(g), m.group(g), m.start())


def _all_hits(buf: Buffer, literal: bytes, end: int, hits: Hits) -> Iterator[int]:
    """The hits, then the literal's further offsets if the search stopped early."""
    yield from hits.offsets
    if not hits.complete:
        at = hits.offsets[-1] + len(literal)
        while (at := buf.find(literal, at, end)) >= 0:
            yield at
            at += len(literal)
