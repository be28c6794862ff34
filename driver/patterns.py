"""What a metric pattern can match, read from its parse tree (``re._parser``), once per pattern.

The scraper uses these answers to pick its fastest exact way to scan a block of lines: whether
a pattern can consume a line break, which literal bytes every match contains, whether it is
anchored with a leading ``^``, and whether it looks past its own line (lookbehind, ``\\A``,
``\\Z``). Every answer is conservative: when in doubt, the slower exact path is chosen.
"""

from __future__ import annotations

import re
from typing import Any

MIN_LITERAL = 3  # shorter literals are not worth a pre-search


def literal_runs(pattern: bytes, flags: int) -> list[bytes]:
    """The runs of literal bytes (3 or more) that every match of *pattern* contains."""
    if flags & re.IGNORECASE:
        return []
    try:
        tree = _sre_parse().parse(pattern, flags)
    except Exception:
        return []
    if tree.state.flags & re.IGNORECASE:
        return []
    runs: list[bytes] = []
    current = bytearray()

    def walk(items: Any) -> None:
        nonlocal current
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                current.append(av)
            elif name == "SUBPATTERN" and not av[1] and not av[2]:
                walk(av[3])  # a plain group: its content is required too
            else:
                runs.append(bytes(current))
                current = bytearray()

    walk(tree)
    runs.append(bytes(current))
    return [run for run in runs if len(run) >= MIN_LITERAL]


def looks_past_its_line(pattern: str) -> bool:
    """True for a lookbehind, ``\\A`` or ``\\Z`` anywhere in *pattern* (or when it cannot be
    parsed): inside a block of lines they would see, or miss, the neighbouring lines."""
    try:
        tree = _sre_parse().parse(pattern, re.MULTILINE)
    except Exception:
        return True
    return _any_node(list(tree), lambda name, av: (
        name in ("ASSERT", "ASSERT_NOT") and av[0] < 0
        or name == "AT" and str(av) in ("AT_BEGINNING_STRING", "AT_END_STRING")))


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


def starts_with_literal(pattern: bytes, flags: int) -> bool:
    """True when every match of *pattern* begins with a fixed byte: the regex engine then jumps
    from one occurrence of it to the next instead of trying a match at every offset."""
    try:
        tree = _sre_parse().parse(pattern, flags)
    except Exception:
        return False
    if tree.state.flags & re.IGNORECASE:
        return False
    items = list(tree)
    while items:
        name, av = str(items[0][0]), items[0][1]
        if name == "LITERAL":
            return True
        if name != "SUBPATTERN" or av[1] or av[2]:  # only a plain group is looked into
            return False
        items = list(av[3])
    return False


_GLOBAL_FLAGS = re.compile(rb"\(\?[aiLmsux]+\)")


def split_global_flags(pattern: bytes) -> tuple[bytes, bytes]:
    """``(b"(?i)", b"rest")`` for a pattern that starts with global inline flags, else
    ``(b"", pattern)``: such flags must stay at the very start when the pattern is wrapped."""
    found = _GLOBAL_FLAGS.match(pattern)
    return (pattern[: found.end()], pattern[found.end() :]) if found else (b"", pattern)


def leading_caret(pattern: bytes) -> bool:
    """True when *pattern* is ``^REST`` with the caret applying to the whole pattern."""
    if not pattern.startswith(b"^"):
        return False
    try:
        tree = list(_sre_parse().parse(pattern, re.MULTILINE))
    except Exception:
        return False
    return not any(str(op) == "BRANCH" for op, _ in tree)


def _sre_parse() -> Any:
    try:
        from re import _parser  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as _parser  # type: ignore[no-redef]
    return _parser


def may_match_newline(pattern: str) -> bool:
    """True unless *pattern* provably cannot consume a line break (conservative)."""
    try:
        tree = _sre_parse().parse(pattern, re.MULTILINE)
    except Exception:
        return True
    return _walk(list(tree), bool(tree.state.flags & re.DOTALL))


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
