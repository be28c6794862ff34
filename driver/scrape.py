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
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from driver.config import MetricSpec

NEWLINE = b"\n"
MAX_UNPARSED_EXAMPLES = 5
MAX_PENDING_BYTES = 64 << 20  # a "line" longer than this is scanned in pieces


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


class _Pattern:
    """One metric's compiled pattern and the way it is scanned."""

    def __init__(self, spec: MetricSpec) -> None:
        self.exact = spec.compile()
        self.group = self.exact.groupindex.get("value", 1)
        self.fast: re.Pattern[bytes] | None = None
        if not may_match_newline(spec.pattern):
            try:
                self.fast = re.compile(b"(?:" + self.exact.pattern + b")[^\n]*", re.MULTILINE)
            except re.error:  # e.g. global inline flags, which must stay at the very start
                self.fast = None

    def texts(self, block: bytes) -> list[bytes | None]:
        """The captured text of the first match on each line of *block*."""
        if self.fast is None:
            return [text for _, text in self.positioned(block)]
        found = self.fast.findall(block)
        if self.fast.groups > 1:
            return [t[self.group - 1] or None for t in found]
        return found

    def positioned(self, block: bytes) -> list[tuple[int, bytes | None]]:
        """Like :meth:`texts`, with the block offset where each captured number starts."""
        g = self.group
        if self.fast is not None:
            return [(m.start(g), m.group(g)) for m in self.fast.finditer(block)]
        out = []
        offset = 0
        search = self.exact.search
        for line in block.splitlines(keepends=True):
            m = search(line)
            if m is not None:
                out.append((offset + m.start(g), m.group(g)))
            offset += len(line)
        return out

    def start_on_line(self, block: bytes, at: int) -> int:
        """Where this pattern's match starts on the line holding offset *at*."""
        begin = block.rfind(NEWLINE, 0, at) + 1
        end = block.find(NEWLINE, at)
        m = self.exact.search(block[begin : end + 1 if end >= 0 else len(block)])
        return m.start() if m is not None else -1


class Scraper:
    """Feed it output chunks of any size; it scans whole lines and keeps only the partial last one."""

    def __init__(self, metrics: Sequence[MetricSpec]) -> None:
        self.metrics = tuple(metrics)
        self._patterns = [_Pattern(m) for m in self.metrics]
        self.found = {m.name: MetricMatches() for m in self.metrics}
        self._sinks = [self.found[m.name] for m in self.metrics]
        self._pending = b""

    def feed(self, data: bytes) -> None:
        """Scan every complete line in ``pending + data``; keep the unfinished tail."""
        cut = data.rfind(NEWLINE)
        if cut < 0:
            self._pending += data
            if len(self._pending) > MAX_PENDING_BYTES:
                self._scan(self._pending)
                self._pending = b""
            return
        block = self._pending + data[: cut + 1] if self._pending else data[: cut + 1]
        self._pending = data[cut + 1 :]
        self._scan(block)

    def close(self) -> dict[str, MetricMatches]:
        """Scan the last line (even without a final newline) and return the matches per metric."""
        if self._pending:
            self._scan(self._pending + NEWLINE)
            self._pending = b""
        return self.found

    def _scan(self, block: bytes) -> None:
        texts = [p.texts(block) for p in self._patterns]
        if len(texts) > 1:
            self._resolve_collisions(block, texts)
        for sink, found in zip(self._sinks, texts):
            if found:
                sink.add(found)

    def _resolve_collisions(self, block: bytes, texts: list[list[bytes | None]]) -> None:
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
        found = {i: self._patterns[i].positioned(block) for i in involved}
        lost: dict[int, set[int]] = {i: set() for i in involved}
        for i, j in pairs:
            shared = {at for at, _ in found[i]} & {at for at, _ in found[j]}
            for at in shared:
                start_i = self._patterns[i].start_on_line(block, at)
                start_j = self._patterns[j].start_on_line(block, at)
                if start_i < start_j:
                    lost[j].add(at)
                elif start_j < start_i:
                    lost[i].add(at)
        for i, gone in lost.items():
            if gone:
                texts[i] = [text for at, text in found[i] if at not in gone]


def may_match_newline(pattern: str) -> bool:
    """True unless *pattern* provably cannot consume a line break (conservative)."""
    try:
        from re import _constants as sre_constants  # type: ignore[attr-defined]
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_constants  # type: ignore[no-redef]
        import sre_parse  # type: ignore[no-redef]
    try:
        tree = sre_parse.parse(pattern, re.MULTILINE)
    except Exception:
        return True
    return _walk(list(tree), bool(tree.state.flags & sre_constants.SRE_FLAG_DOTALL))


_NEWLINE_CATEGORIES = {
    "CATEGORY_SPACE", "CATEGORY_NOT_DIGIT", "CATEGORY_NOT_WORD", "CATEGORY_LINEBREAK",
    "CATEGORY_UNI_SPACE", "CATEGORY_UNI_NOT_DIGIT", "CATEGORY_UNI_NOT_WORD",
    "CATEGORY_UNI_LINEBREAK", "CATEGORY_LOC_NOT_WORD",
}
_SAFE_CATEGORIES = {
    "CATEGORY_DIGIT", "CATEGORY_WORD", "CATEGORY_NOT_SPACE", "CATEGORY_NOT_LINEBREAK",
    "CATEGORY_UNI_DIGIT", "CATEGORY_UNI_WORD", "CATEGORY_UNI_NOT_SPACE",
    "CATEGORY_UNI_NOT_LINEBREAK", "CATEGORY_LOC_WORD",
}
_DOTALL = re.DOTALL.value


def _walk(items: list[tuple[Any, Any]], dotall: bool) -> bool:
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            if av == 10:
                return True
        elif name == "NOT_LITERAL":
            if av != 10:
                return True
        elif name == "ANY":
            if dotall:
                return True
        elif name == "IN":
            if _set_has_newline(av):
                return True
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            if _walk(list(av[2]), dotall):
                return True
        elif name == "SUBPATTERN":
            _, add, remove, sub = av
            if _walk(list(sub), (dotall or bool(add & _DOTALL)) and not remove & _DOTALL):
                return True
        elif name == "BRANCH":
            if any(_walk(list(alt), dotall) for alt in av[1]):
                return True
        elif name in ("ASSERT", "ASSERT_NOT"):
            if _walk(list(av[1]), dotall):
                return True
        elif name == "ATOMIC_GROUP":
            if _walk(list(av), dotall):
                return True
        elif name != "AT":
            return True  # back-references and anything unknown: assume the worst
    return False


def _set_has_newline(items: list[tuple[Any, Any]]) -> bool:
    negate = False
    hit = False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            hit = hit or av == 10
        elif name == "RANGE":
            hit = hit or av[0] <= 10 <= av[1]
        elif name == "CATEGORY" and str(av) in _NEWLINE_CATEGORIES:
            hit = True
        elif not (name == "CATEGORY" and str(av) in _SAFE_CATEGORIES):
            return True
    return hit != negate
