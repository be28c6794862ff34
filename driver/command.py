"""Command templates: ``{name}`` placeholders substituted safely into a ``/bin/sh -c`` command.

A value must reach the command as exactly its text, whatever it holds (``$(...)``, backticks,
``;``, quotes, backslashes, globs, newlines, the empty string). How to quote it depends on where
the placeholder stands in the shell text around it, so a small, conservative POSIX-sh scanner reads
the literal text up to each placeholder and finds its quoting context:

* a whole unquoted word (``--epochs {epochs} --lr``): a plain value (letters, digits and
  ``_ @ % + : , . / -``, not a reserved word such as ``if``) is written as it is, as the old
  driver wrote it; any other value as one single-quoted word ``'...'``;
* unquoted inside a word (``--epochs={epochs}``, ``{n}>log``): always single-quoted, so that the
  value never joins a ``~``, an ``=``, a redirection or a function name around it;
* inside single quotes (``'name={name}'``): each ``'`` of the value becomes ``'\\''``;
* inside double quotes (``"name={name}"``): ``\\``, ``"``, ``$`` and backticks get a backslash.

Any other placement is refused when the config is validated, with a message saying where to put the
placeholder: in a comment, right after a backslash or a ``$``, or anywhere after a construct whose
extent or quoting the scanner does not prove (backticks, ``$(...)`` inside double quotes, ``$((``,
``((``, ``$[``, ``${...}`` whose word holds quotes or expansions, ``$'...'``, ``$"..."``,
here-documents). Simple expansions such as ``$HOME``, ``${HOME}`` or ``${GPUS:-0}`` are fine.

Conversions and format specs (``{name!r}``, ``{name:>4}``) are refused: they would format text
the driver must quote afterwards; put the value in the form the command wants in the parameter.

The guarantee is about the shell that parses the command: the value arrives as literal text. A
program that evaluates its arguments as code (``eval``, ``sh -c``, ``ssh``, bash's ``let`` and
``[[ a -eq b ]]``, which evaluate array subscripts) runs what it is given.
"""

from __future__ import annotations

import re
from _string import formatter_parser  # string.Formatter.parse; `import string` costs ~3M
from typing import Mapping

from driver.errors import ConfigError
from driver.records import Record

WORD, UNQUOTED, SINGLE, DOUBLE = "word", "unquoted", "single", "double"
_BLANKS = " \t\n"
_OPERATORS = ";&|()<>"
_WORD_END = _BLANKS + ";&|)"  # after a whole word; "<", ">" or "(" would change what it means
# Patterns as text, compiled where used (re caches them): a run compiles only those it needs.
_PLAIN = r"[A-Za-z0-9_@%+:,./-]+"  # shlex's safe set less "=" (an assignment)
_RESERVED = frozenset("case coproc do done elif else esac fi for function if in select then "
                      "time until while".split())
_PARAMETER = r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[#?@*!$-])"
# ${NAME}, ${#NAME}, ${NAME:-word} with a word free of quotes, expansions and braces
_SIMPLE_EXPANSION = (
    rf"\$\{{(?:#?{_PARAMETER}|{_PARAMETER}(?::?[-=?+]|##?|%%?)[^'\"`$\\{{}}]*)\}}")
_DOUBLE_SPECIAL = r'([\\"$`])'
_FIX = (", where the driver cannot prove its value stays literal text; put it outside quotes "
        "(--opt {name}), or inside '...' or \"...\", not right after a $ or a backslash")
_UNSAFE = ("after {snippet!r}, {what}; the driver cannot prove a value placed after it stays "
           "literal text: move {name} before it, or move that shell code into a script that "
           "takes the value as an argument")


class Placeholder(Record):
    """A ``{name}`` in a command and its quoting context (WORD, UNQUOTED, SINGLE or DOUBLE)."""

    name: str
    quoting: str


Template = tuple[str | Placeholder, ...]


def parse_template(command: str, where: str) -> Template:
    """Split *command* into literal text and placeholders; ConfigError for an unsafe placement.

    *where* (``file: [tasks.NAME] command_to_execute``) starts every message.
    """
    try:
        fields = list(formatter_parser(command))
    except ValueError as exc:
        raise ConfigError(f"{where} = {command!r}: {exc}; write a literal brace as {{{{ or }}}}"
                          ) from None
    scanner = _Scanner(plain_words="alias" not in command)  # an alias could take a bare word
    parts: list[str | Placeholder] = []
    literal = ""  # "{{" splits the parser's literal text; the scanner reads it whole
    for k, (text, name, spec, conversion) in enumerate(fields):
        literal += text
        if name is None:
            continue
        if spec or conversion:
            shown = f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            raise ConfigError(f"{where} uses {shown}: conversions (!r) and format specs (:...) "
                              f"are not supported in commands; write {{{name}}} and give the "
                              f"parameter the text the command wants")
        scanner.feed(literal)
        quoting, why = scanner.placeholder(f"{{{name}}}", _ends_word(fields[k + 1:]))
        if why:
            raise ConfigError(f"{where} = {command!r}: {{{name}}} stands {why}")
        parts += [literal, Placeholder(name, quoting)]
        literal = ""
    return tuple(p for p in [*parts, literal] if p != "")


def _ends_word(following: list[tuple[str, str | None, str | None, str | None]]) -> bool:
    """Whether the text after a placeholder ends its word (end of command, blank or operator)."""
    for text, name, _, _ in following:
        if text:
            return text[0] in _WORD_END
        if name is not None:
            return False  # another placeholder joins this word
    return True


def render(template: Template, values: Mapping[str, str], where: str) -> str:
    """The command text with every placeholder replaced by its value, quoted for its context."""
    out = []
    for part in template:
        if isinstance(part, str):
            out.append(part)
        elif part.name not in values:
            raise ConfigError(f"{where}: no value for {{{part.name}}}")
        else:
            out.append(quote(values[part.name], part.quoting))
    return "".join(out)


def quote(text: str, quoting: str) -> str:
    """*text* written so that the shell reads it back exactly in a *quoting* context."""
    if quoting == SINGLE:
        return text.replace("'", "'\\''")
    if quoting == DOUBLE:
        return re.sub(_DOUBLE_SPECIAL, r"\\\1", text)
    if quoting == WORD and re.fullmatch(_PLAIN, text) and text not in _RESERVED:
        return text
    return "'" + text.replace("'", "'\\''") + "'"


class _Scanner:
    """The quoting state of POSIX sh text read so far (literal text between placeholders)."""

    def __init__(self, plain_words: bool) -> None:
        self.plain_words = plain_words  # False after "[[": a bare word could be a regex there
        self.quote = ""  # "", "'" or '"'
        self.escaped = False  # the previous character was an unquoted or double-quoted backslash
        self.comment = False
        self.word_start = True  # a "#" here would start a comment
        self.dollar = False  # the previous character was a $ that may start an expansion
        self.unsafe: tuple[str, str] | None = None  # (text, what): no placement after it is safe

    def placeholder(self, name: str, ends_word: bool) -> tuple[str, str]:
        """The quoting context of placeholder *name* here, and why it is refused ("" if not)."""
        quoting = {"": UNQUOTED, "'": SINGLE, '"': DOUBLE}[self.quote]
        if not self.quote:
            if self.word_start and ends_word and self.plain_words:
                quoting = WORD
            self.word_start = False  # "{x}#y": the "#" is inside the word
        refusals = ((self.comment, "in a comment"), (self.escaped, "right after a backslash"),
                    (self.dollar, "right after $ (it would become part of a $ expansion)"))
        if self.unsafe:
            return quoting, _UNSAFE.format(snippet=self.unsafe[0], what=self.unsafe[1], name=name)
        why = next((why + _FIX.format(name=name) for refused, why in refusals if refused), "")
        return quoting, why

    def feed(self, text: str) -> None:
        """Advance over literal command text."""
        i = 0
        while i < len(text) and not self.unsafe:
            i = self._step(text, i)

    def _step(self, text: str, i: int) -> int:
        c = text[i]
        if self.comment:
            self.comment = c != "\n"
            self.word_start = c == "\n"
        elif self.escaped:
            self.escaped = False
            self.word_start = self.word_start and c == "\n"  # backslash-newline joins lines
        elif self.quote == "'":
            self.quote = "" if c == "'" else "'"
        elif c == "\\":
            self.escaped, self.dollar = True, False
        elif c == "$":
            return self._dollar(text, i)
        elif c == "`":
            self._refuse(text, i, "a backtick command substitution; write $(...) instead")
        elif self.quote == '"':
            self.quote = "" if c == '"' else '"'
        else:
            self._unquoted(text, i)
        self.dollar = False
        return i + 1

    def _unquoted(self, text: str, i: int) -> None:
        c = text[i]
        if text.startswith("<<", i):
            self._refuse(text, i, "a here-document")
        elif text.startswith("((", i):
            self._refuse(text, i, "an arithmetic command ((...))")
        elif text.startswith("[[", i):
            self.plain_words = False
            self.word_start = False
        elif c in _BLANKS or c in _OPERATORS:
            self.word_start = True
        elif c == "#" and self.word_start:
            self.comment = True
        else:
            self.word_start = False
            self.quote = c if c in "'\"" else ""

    def _dollar(self, text: str, i: int) -> int:
        self.word_start = False
        simple = re.compile(_SIMPLE_EXPANSION).match(text, i)
        if simple:
            self.dollar = False
            return simple.end()
        after = text[i + 1:i + 2]
        if after == "{":
            self._refuse(text, i, "a ${...} expansion whose word holds quotes, expansions or braces")
        elif after == "[" or text.startswith("$((", i):
            self._refuse(text, i, "an arithmetic expansion")
        elif after == "(" and self.quote:
            self._refuse(text, i, "a $(...) inside double quotes")
        elif after in ("'", '"') and not self.quote:
            self._refuse(text, i, f"{text[i:i + 2]}...{after} quoting")
        self.dollar = True
        return i + 1

    def _refuse(self, text: str, i: int, what: str) -> None:
        self.unsafe = (text[i:i + 12], what)
