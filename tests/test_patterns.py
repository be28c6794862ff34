"""Parse-tree answers the scraper relies on; each must be conservative (never wrongly 'safe')."""

from __future__ import annotations

import re

import pytest

from driver.patterns import leading_caret, literal_runs, looks_past_its_line, may_match_newline


@pytest.mark.parametrize(
    "pattern, crosses",
    [
        (r"Speed: (\S+) samples", False), (r"a.(b)", False), (r"[^\n]+(\d)", False),
        (r"\d+ (\w+)", False), (r"a\s(\d+)", True), (r"x[^a](\d)", True), (r"(?s)a.(b)", True),
        (r"(a)\1", True), (r"\n(x)", True), (r"(?=\s)(x)", True), (r"a\D(b)", True),
    ],
)
def test_may_match_newline(pattern, crosses):
    assert may_match_newline(pattern) is crosses


@pytest.mark.parametrize(
    "pattern, runs",
    [
        (rb"Speed: (\S+) samples/sec", [b"Speed: ", b" samples/sec"]),
        (rb"^\[Epoch \d+\] time cost: (\S+)", [b"[Epoch ", b"] time cost: "]),
        (rb"(?:total )?time: (\d+)", [b"time: "]),       # an optional part is not required
        (rb"a(?:bcd|e)f(x)", []),                         # an alternation breaks the run
        (rb"(?i)speed: (\d+)", []),                      # case-insensitive: no literal bytes
    ],
)
def test_literal_runs_are_required_by_every_match(pattern, runs):
    assert literal_runs(pattern, re.MULTILINE) == runs


def test_leading_caret_only_when_it_anchors_the_whole_pattern():
    assert leading_caret(rb"^\[Epoch \d+\] (\S+)")
    assert not leading_caret(rb"^a|b(\d)") and not leading_caret(rb"a^(\d)")


@pytest.mark.parametrize("pattern, looks", [(r"(?<=x)(\d)", True), (r"(?<!\s)(\d)", True),
                                            (r"\Aloss (\d)", True), (r"(\d)\Z", True),
                                            (r"(?=x)(\d)", False), (r"^a (\d)$", False)])
def test_looks_past_its_line(pattern, looks):
    assert looks_past_its_line(pattern) is looks
