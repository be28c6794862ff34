"""What a metric pattern can match, read from its parse tree (``re._parser``), once per pattern.

The scraper uses these answers to pick its fastest exact way to scan a block of lines: whether
a pattern can consume a line break, which literal bytes every match contains, whether it is
anchored with a leading ``^``, and whether it looks past its own line (lookbehind, ``\\A``,
``\\Z``). Every answer is conservative: when in doubt, the slower exact path is chosen.
"""

from __future__ import annotations

import re
from typing import Any

from driver.records import Record

MIN_LITERAL = 3  # shorter literals are not worth a pre-search


class PatternFacts(Record):
    """What one pattern's parse tree says about the text it can match."""

    literals: tuple[bytes, ...]  # runs of 3 or more literal bytes that every match contains
    may_match_newline: bool  # False only when no match can consume a line break
    looks_past_its_line: bool  # a lookbehind, \A or \Z: inside a block it would see other lines
    leading_caret: bool  # ``^REST`` (after global inline flags), the caret anchoring it all
    starts_with_literal: bool  # every match begins with a fixed byte (a fast prefix scan)


#: The answers for a pattern that cannot be parsed here: the slow, exact way.
UNKNOWN = PatternFacts((), True, True, False, False)


def analyse(pattern: bytes, flags: int = re.MULTILINE) -> PatternFacts:
    """Parse *pattern* once and answer every question the scraper asks about it."""
    try:
        tree = _sre_parse().parse(pattern, flags)
    except Exception:
        return UNKNOWN
    items = list(tree)
    nocase = bool((tree.state.flags | flags) & re.IGNORECASE)  # no literal bytes then
    return PatternFacts(
        literals=() if nocase else tuple(_literal_runs(items)),
        may_match_newline=_walk(items, bool(tree.state.flags & re.DOTALL)),
        looks_past_its_line=_any_node(items, _looks_past),
        leading_caret=split_global_flags(pattern)[1].startswith(b"^")
        and not any(str(op) == "BRANCH" for op, _ in items),
        starts_with_literal=not nocase and _starts_with_literal(items),
    )


def _literal_runs(items: list[tuple[Any, Any]]) -> list[bytes]:
    runs: list[bytes] = []
    current = bytearray()

    def walk(nodes: Any) -> None:
        nonlocal current
        for op, av in nodes:
            name = str(op)
            if name == "LITERAL":
                current.append(av)
            elif name == "SUBPATTERN" and not av[1] and not av[2]:
                walk(av[3])  # a plain group: its content is required too
            else:
                runs.append(bytes(current))
                current = bytearray()

    walk(items)
    runs.append(bytes(current))
    return [run for run in runs if len(run) >= MIN_LITERAL]


def _looks_past(name: str, av: Any) -> bool:
    return (name in ("ASSERT", "ASSERT_NOT") and av[0] < 0
            or name == "AT" and str(av) in ("AT_BEGINNING_STRING", "AT_END_STRING"))


def _starts_with_literal(items: list[tuple[Any, Any]]) -> bool:
    while items:
        name, av = str(items[0][0]), items[0][1]
        if name == "LITERAL":
            return True
        if name != "SUBPATTERN" or av[1] or av[2]:  # only a plain group is looked into
            return False
        items = list(av[3])
    return False


def _any_node(items: list[tuple[Any, Any]], test: Any) -> bool:
    """Whether *test(name, argument)* holds for any node of a parse tree."""
    for op, av in items:
        name = str(op)
        if test(name, av):
            return True
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            children = [list(av[2])]
        elif name == "SUBPATTERN":
            children = [list(av[3])]
        elif name == "BRANCH":
            children = [list(alt) for alt in av[1]]
        elif name in ("ASSERT", "ASSERT_NOT"):
            children = [list(av[1])]
        elif name == "ATOMIC_GROUP":
            children = [list(av)]
        else:
            children = []
        if any(_any_node(child, test) for child in children):
            return True
    return False


_GLOBAL_FLAGS = re.compile(rb"\(\?[aiLmsux]+\)")


def split_global_flags(pattern: bytes) -> tuple[bytes, bytes]:
    """``(b"(?i)", b"rest")`` for a pattern that starts with global inline flags, else
    ``(b"", pattern)``: such flags must stay at the very start when the pattern is wrapped."""
    found = _GLOBAL_FLAGS.match(pattern)
    return (pattern[: found.end()], pattern[found.end() :]) if found else (b"", pattern)


def _sre_parse() -> Any:
    try:
        from re import _parser  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as _parser  # type: ignore[no-redef]
    return _parser


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
