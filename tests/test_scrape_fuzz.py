"""Differential fuzz test: the scraper against the semantics spelled out per line.

The reference splits the log with ``bytes.splitlines`` (``\\n``, ``\\r\\n``, lone ``\\r``),
searches every line with one ``\\n`` after it (``re.search``), takes the first match, resolves
collisions between patterns on that line, and parses with ``MetricMatches.add``. The scraper
must give exactly the same values, counts and examples, whatever the chunking, the prefilter
engine (Hyperscan or pure Python), the feeding (``feed`` chunks or ``scan_lines`` over a memory
map, as the driver's log reader does) and its internal thresholds (block and sample sizes, the
hit cap), which are shrunk here so that small logs cross every boundary.

Seeded and bounded for CI (a few seconds); ``BENCH_DRIVER_FUZZ_CASES=20000`` runs more.
"""

from __future__ import annotations

import itertools
import mmap
import os
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from driver import matcher, prefilter, scrape
from driver.config import MetricSpec
from driver.scrape import MetricMatches, Scraper

CASES = int(os.environ.get("BENCH_DRIVER_FUZZ_CASES", "200"))
ENGINES = ["python", "hyperscan"]

PATTERNS = [
    r"loss=(\S+)",
    r"^\[Epoch \d+\] time cost: (\S+)",                  # anchored
    r"time cost: (\S+)",                                 # collides with the two around it
    r"total time cost: (\S+)",
    r"Speed: (\d+\.\d+|\d+) samples/sec",               # the old driver's number group
    r"(\S+) samples/sec",                                # a leading class: no prefix scan
    r"(?<=acc=)(\d+)",                                   # lookbehind: sees only its line
    r"(?<!\d)(\d+)\]",
    r"(\d+)\]",
    r"acc=(\d)",
    r"(?:loss|acc)=(\S+)",                               # alternation, no literal
    r"(?i)LOSS=(\S+)",                                   # no literal bytes
    r"cost:\s*(\S+)",                                    # may cross a line break
    r"\s(\d+)$",                                         # may cross, no literal: per line
    r"value (?P<value>\S+) (\w+)",                       # named group among others
    r"(\d*)$",                                           # matches the empty string
    r"\Aloss=(\S+)",                                     # \A: the start of its line
    r"(\d)\n\Z",                                         # \Z: the end of its line
    r"=(\d+)(?=\s|$)",                                   # lookahead
    r"(a|b)?c=(?P<value>\d+)",                           # an optional group
    r"(?x) loss = (\S+)",                                # verbose
    r"^INFO:root:(\S+) it/s",                            # a literal on every line
    r"progress (\d+)%",
]

NUMBERS = ["1.5", "-0.5", "1.5e-05", "08", "nan", "inf", "-inf", "oops", "7", "73", "3",
           "12.25", "1e308", "", "0x1f"]


def _number(rng: random.Random) -> str:
    return rng.choice(NUMBERS)


FRAGMENTS = [
    lambda r: f"loss={_number(r)}",
    lambda r: f"[Epoch {r.randrange(99)}] time cost: {_number(r)}",
    lambda r: f"total time cost: {_number(r)}",
    lambda r: f"Speed: {_number(r)} samples/sec",
    lambda r: f"acc={r.choice(['73]', '3]', '5', '12'])}",
    lambda r: f"LoSs={_number(r)}",
    lambda r: f"value {_number(r)} unit",
    lambda r: f"bc={r.randrange(100)}",
    lambda r: f"c={r.randrange(100)}",
    lambda r: f"x={r.randrange(100)} ",
    lambda r: "cost:",
    lambda r: f"progress {r.randrange(101)}%",
    lambda r: f" {r.randrange(1000)}",
    lambda r: "filler " * r.randrange(6),
    lambda r: "\xe9t\xe9",
    lambda r: f"{r.uniform(0, 99):.1f} it/s",
]
BAD_BYTES = [b"\xff", b"\xfe\xfd", b"\xc3\x28", b"\x80", b"\x00"]
ENDINGS = [b"\n"] * 8 + [b"\r\n", b"\r", b"\r\r\n", b"\n\r"]


def random_log(rng: random.Random) -> bytes:
    """Lines of fragments, some prefixed INFO:root:, with bad bytes and every line ending."""
    out = []
    prefix = rng.random() < 0.3
    favourite = rng.choice(FRAGMENTS)  # one kind of line is frequent in each log
    for _ in range(rng.randrange(0, 120)):
        parts = [(favourite if rng.random() < 0.3 else rng.choice(FRAGMENTS))(rng).encode()
                 for _ in range(rng.randrange(0, 4))]
        line = b" ".join(parts)
        if prefix or rng.random() < 0.1:
            line = b"INFO:root:" + line
        if rng.random() < 0.1:
            line += rng.choice(BAD_BYTES)
        if rng.random() < 0.03:
            line += b"y" * rng.randrange(200, 700)  # longer than a shrunk block
        out.append(line + rng.choice(ENDINGS))
    log = b"".join(out)
    return log[:-1] if log and rng.random() < 0.2 else log  # sometimes no final line break


def reference(log: bytes, specs: list[MetricSpec]) -> dict[str, MetricMatches]:
    """The documented semantics, line by line."""
    compiled = {s.pattern: re.compile(s.pattern.encode(), re.MULTILINE) for s in specs}
    found = {s.name: MetricMatches() for s in specs}
    for line in log.splitlines():
        first = {}
        for pattern, regex in compiled.items():
            m = regex.search(line + b"\n")
            if m is not None:
                g = regex.groupindex.get("value", 1)
                first[pattern] = (m.start(g), m.group(g), m.start())
        kept = dict(first)
        for p, q in itertools.combinations(first, 2):
            (at_p, text_p, start_p), (at_q, text_q, start_q) = first[p], first[q]
            if text_p and (at_p, text_p) == (at_q, text_q):  # the same number
                if start_p < start_q:
                    kept.pop(q, None)
                elif start_q < start_p:
                    kept.pop(p, None)
        for spec in specs:
            if spec.pattern in kept:
                found[spec.name].add([kept[spec.pattern][1]])
    return found


def random_specs(rng: random.Random) -> list[MetricSpec]:
    chosen = rng.sample(PATTERNS, rng.randrange(1, 9))
    chosen += [rng.choice(chosen) for _ in range(rng.randrange(0, 3))]  # shared patterns
    return [MetricSpec(f"m{i}", p, "last") for i, p in enumerate(chosen)]


def by_feed(log: bytes, scraper: Scraper, rng: random.Random) -> dict[str, MetricMatches]:
    at = 0
    while at < len(log):
        size = rng.choice([1, 2, 7, 64, 333, 4096, len(log)])
        scraper.feed(log[at:at + size])
        at += size
    return scraper.close()


def by_scan_lines(log: bytes, scraper: Scraper, rng: random.Random,
                  path: Path) -> dict[str, MetricMatches]:
    """As driver.output.LogReader does: whole lines of a memory map, then the last line."""
    path.write_bytes(log)
    done = 0
    if log:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            while True:
                limit = min(len(log), done + rng.choice([5, 100, 1000, len(log)]))
                cut = view.rfind(b"\n", done, limit) + 1
                if cut <= done:
                    cut = view.rfind(b"\n", done, len(log)) + 1
                    if cut <= done:
                        break
                scraper.scan_lines(view, done, cut)
                done = cut
    if done < len(log):
        tail = log[done:] + b"\n"
        scraper.scan_lines(tail, 0, len(tail))
    return scraper.close()


@pytest.fixture
def shrunk(monkeypatch: pytest.MonkeyPatch):
    """Sets the scraper's thresholds for one case."""

    def shrink(rng: random.Random) -> None:
        monkeypatch.setattr(scrape, "BLOCK_BYTES", rng.choice([64, 200, 1 << 20]))
        monkeypatch.setattr(scrape, "SAMPLE_BYTES", rng.choice([1, 150, 1 << 20]))
        monkeypatch.setattr(prefilter, "CAP", rng.choice([1, 3, 64]))

    return shrink


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How often each scanning way (none / sparse / fast / lines) was taken."""
    taken: Counter = Counter()
    original = matcher.LineMatcher._plan

    def recording(self: matcher.LineMatcher, hits: prefilter.Hits | None) -> str:
        how = original(self, hits)
        taken[how] += 1
        return how

    monkeypatch.setattr(matcher.LineMatcher, "_plan", recording)
    return taken


@pytest.mark.parametrize("engine", ENGINES)
def test_scraper_agrees_with_per_line_search(engine, shrunk, plans, tmp_path):
    if engine == "hyperscan" and not prefilter.hyperscan_available():
        pytest.fail("hyperscan is not installed: pip install -e '.[test]' (it is in the extras)")
    rng = random.Random(f"fuzz-{engine}")
    demoted = 0
    for case in range(CASES):
        log, specs = random_log(rng), random_specs(rng)
        expected = reference(log, specs)
        for feeding in ("feed", "scan_lines"):
            shrunk(rng)
            scraper = Scraper(specs, prefilter=engine)
            assert scraper.prefilter == engine
            got = (by_feed(log, scraper, rng) if feeding == "feed"
                   else by_scan_lines(log, scraper, rng, tmp_path / "output.log"))
            assert got == expected, (case, feeding, [s.pattern for s in specs], log)
            demoted += len(scraper._search._frequent)
    assert set(plans) == {"none", "sparse", "fast", "lines"}, plans  # every way was checked
    assert demoted > 0  # and literals that turned frequent
