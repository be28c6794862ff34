"""Parse-tree answers the scraper relies on; each must be conservative (never wrongly 'safe')."""

from __future__ import annotations

import re

import pytest

from driver.patterns import UNKNOWN, analyse, split_global_flags


@pytest.mark.parametrize(
    "pattern, crosses",
    [
        (r"Speed: (\S+) samples", False), (r"a.(b)", False), (r"[^\n]+(\d)", False),
        (r"\d+ (\w+)", False), (r"a\s(\d+)", True), (r"x[^a](\d)", True), (r"(?s)a.(b)", True),
        (r"(a)\1", True), (r"\n(x)", True), (r"(?=\s)(x)", True), (r"a\D(b)", True),
    ],
)
def test_may_match_newline(pattern, crosses):
    assert analyse(pattern.encode()).may_match_newline is crosses


@pytest.mark.parametrize(
    "pattern, runs",
    [
        (rb"Speed: (\S+) samples/sec", (b"Speed: ", b" samples/sec")),
        (rb"^\[Epoch \d+\] time cost: (\S+)", (b"[Epoch ", b"] time cost: ")),
        (rb"(?:total )?time: (\d+)", (b"time: ",)),       # an optional part is not required
        (rb"a(?:bcd|e)f(x)", ()),                         # an alternation breaks the run
        (rb"(?i)speed: (\d+)", ()),                      # case-insensitive: no literal bytes
    ],
)
def test_literal_runs_are_required_by_every_match(pattern, runs):
    assert analyse(pattern).literals == runs
    assert analyse(pattern, re.MULTILINE | re.IGNORECASE).literals == ()


def test_leading_caret_only_when_it_anchors_the_whole_pattern():
    assert analyse(rb"^\[Epoch \d+\] (\S+)").leading_caret
    assert analyse(rb"(?i)^epoch (\S+)").leading_caret  # after global flags
    assert not analyse(rb"^a|b(\d)").leading_caret and not analyse(rb"a^(\d)").leading_caret


@pytest.mark.parametrize("pattern, looks", [(r"(?<=x)(\d)", True), (r"(?<!\s)(\d)", True),
                                            (r"\Aloss (\d)", True), (r"(\d)\Z", True),
                                            (r"(?=x)(\d)", False), (r"^a (\d)$", False)])
def test_looks_past_its_line(pattern, looks):
    assert analyse(pattern.encode()).looks_past_its_line is looks


@pytest.mark.parametrize("pattern, starts", [(rb"Speed: (\d+)", True), (rb"(x)y", True),
                                             (rb"\S+ a", False), (rb"(?i)abc", False),
                                             (rb"(?:a|b)c", False), (rb"^abc", False)])
def test_starts_with_literal(pattern, starts):
    assert analyse(pattern).starts_with_literal is starts


def test_a_pattern_that_cannot_be_parsed_gets_the_slow_exact_answers():
    assert analyse(rb"(unclosed") == UNKNOWN
    assert UNKNOWN.may_match_newline and UNKNOWN.looks_past_its_line and not UNKNOWN.literals


def test_global_flags_are_split_off_only_at_the_start():
    assert split_global_flags(rb"(?i)abc") == (b"(?i)", b"abc")
    assert split_global_flags(rb"(?i:a)bc") == (b"", b"(?i:a)bc")
