"""Command templates: every placement of {name} is quoted for its context or refused.

The shell-level checks run the rendered command through the real /bin/sh, as the runner does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from driver.command import DOUBLE, SINGLE, UNQUOTED, WORD, Placeholder, parse_template, render
from driver.errors import ConfigError

# Each value tries to run `touch PWNED` or to change what the command receives.
HOSTILE = [
    "$(touch PWNED)", "`touch PWNED`", "; touch PWNED", "&& touch PWNED", "| touch PWNED",
    "' ; touch PWNED ; '", '" ; touch PWNED ; "', "'\"'\"'$(touch PWNED)", "\\", "\\'", '\\"',
    "a\\\nb", "$HOME", "${HOME}", "*", "[a-z]*", "~", "~root", "a\nb\ntouch PWNED\n", "",
    " spaced  out ", "-n", "#not a comment", "2>", "x=1", "{a,b}", "\t", "é ü", "\\$(touch PWNED)",
    "2", "PATH", "if", "do", "a.b", "-", "%1", "a:b,c@d+e/f",
]
# (template, the quoting the placeholder gets); each writes exactly the value into the file "out"
PLACEMENTS = [
    ("printf %s {v} > out", WORD),
    ("printf %s {v}>out", UNQUOTED),
    ("(printf %s {v}) > out", WORD),
    ("printf %s {v}|cat > out", WORD),
    ("printf %s \"{v}\" > out", DOUBLE),
    ("printf %s '{v}' > out", SINGLE),
    ("printf %s \"pre {v} post\" > out", DOUBLE),
    ("printf %s 'pre {v} post' > out", SINGLE),
    ("printf %s pre{v}post > out", UNQUOTED),
    ("printf %s ~{v} > out", UNQUOTED),
    ("printf %s x={v} > out", UNQUOTED),
    ("printf %s {v}{v} > out", UNQUOTED),
    ("printf %s \"${{HOME:+}}{v}\" > out", DOUBLE),
    ("printf %s '\\'{v} > out", UNQUOTED),
    ("printf %s \"\\\"\"{v} > out", UNQUOTED),
    ("printf %s \"a'\"{v} > out", UNQUOTED),
    ("# a comment {{v}}\nprintf %s {v} > out", WORD),
    ("printf %s a#{v} > out", UNQUOTED),
    ("printf %s '${v}' > out", SINGLE),
]


def expected(template: str, value: str) -> str:
    """What the placement should write: the literal text around the value, with the value."""
    fixed = {"printf %s {v}>out": "{v}", "printf %s '${v}' > out": "${v}", "printf %s pre{v}post > out": "pre{v}post", "printf %s ~{v} > out": "~{v}",
             "printf %s x={v} > out": "x={v}", "printf %s {v}{v} > out": "{v}{v}",
             "printf %s '\\'{v} > out": "\\{v}", "printf %s \"\\\"\"{v} > out": "\"{v}",
             "printf %s \"a'\"{v} > out": "a'{v}", "printf %s a#{v} > out": "a#{v}",
             "printf %s \"pre {v} post\" > out": "pre {v} post",
             "printf %s 'pre {v} post' > out": "pre {v} post"}
    return fixed.get(template, "{v}").replace("{v}", value)


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, capture_output=True, timeout=30)


@pytest.mark.parametrize("template, quoting", PLACEMENTS)
def test_every_hostile_value_arrives_exactly_and_runs_nothing(tmp_path, template, quoting):
    parts = parse_template(template, "t")
    assert {p.quoting for p in parts if isinstance(p, Placeholder)} == {quoting}
    for value in HOSTILE:
        command = render(parts, {"v": value}, "t")
        done = sh(command, tmp_path)
        assert done.returncode == 0, (command, done.stderr)
        assert (tmp_path / "out").read_text() == expected(template, value), command
        assert not (tmp_path / "PWNED").exists(), command
        (tmp_path / "out").unlink()


@pytest.mark.parametrize("template, refused", [
    ("echo {v!r}", "conversions (!r) and format specs"),
    ("echo {v!s}", "conversions"),
    ("echo {v:>4}", "format specs"),
    ("echo # {v}", "in a comment"),
    ("echo ok; #{v}", "in a comment"),
    ("echo \\{v}", "right after a backslash"),
    ("echo \"\\{v}\"", "right after a backslash"),
    ("echo ${v}", "right after $"),
    ("echo \"${v}\"", "right after $"),
    ("echo `date` {v}", "a backtick command substitution"),
    ("echo \"`date` {v}\"", "a backtick command substitution"),
    ("echo \"$(date) {v}\"", "a $(...) inside double quotes"),
    ("echo $((1 + 2)) {v}", "an arithmetic expansion"),
    ("echo $[1 + 2] {v}", "an arithmetic expansion"),
    ("(( 1 )); echo {v}", "an arithmetic command"),
    ("echo $'a' {v}", "$'...' quoting"),
    ("echo $\"a\" {v}", "$\"...\" quoting"),
    ("cat <<EOF\n{v}\nEOF", "a here-document"),
    ("cat <<'EOF'\n{v}\nEOF", "a here-document"),
    ("echo ${{X:-'a'}} {v}", "a ${...} expansion whose word holds quotes"),
    ("echo ${{X:-$Y}} {v}", "a ${...} expansion whose word holds quotes"),
])
def test_unprovable_placements_are_refused_with_where_to_put_it(template, refused):
    with pytest.raises(ConfigError) as info:
        parse_template(template, "task_config.toml: [tasks.t] command_to_execute")
    message = str(info.value)
    assert message.startswith("task_config.toml: [tasks.t] command_to_execute")
    assert refused in message
    assert "{v}" in message and ("put it outside quotes" in message or "move {v} before it"
                                 in message or "write {v}" in message)


@pytest.mark.parametrize("template", [
    "echo $HOME {v}", "echo ${{HOME}} \"${{HOME}}\" {v}", "echo ${{#HOME}} {v}",
    "echo ${{GPUS:-0}} ${{X%%.*}} {v}", "echo $(date) {v}", "echo $# $? $$ {v}",
    "echo a \\# {v}", "echo \"it's\" {v}", "echo '\"' {v}", "echo {v} # {{v}} is a comment",
    "echo {v} <<EOF\nx\nEOF", "echo \"$'\" {v}", "echo \"$\" {v}", "a=$(echo 1) && echo {v}",
    "echo $(echo {v})", "(echo {v})", "echo \"${{HOME:-/}}\" {v}",
])
def test_placements_after_proven_constructs_are_accepted(tmp_path, template):
    parts = parse_template(template, "t")
    command = render(parts, {"v": "$(touch PWNED)"}, "t")
    done = sh(command, tmp_path)
    assert done.returncode == 0, (command, done.stderr)
    assert b"$(touch PWNED)" in done.stdout
    assert not (tmp_path / "PWNED").exists()


def test_literal_braces_and_quoting_contexts():
    parts = parse_template("awk '{{print $1}}' {a} \"{b}\" '{c}'", "t")
    assert [p for p in parts if isinstance(p, Placeholder)] == [
        Placeholder("a", WORD), Placeholder("b", DOUBLE), Placeholder("c", SINGLE)]
    assert render(parts, {"a": "x y", "b": "$q", "c": "it's"}, "t") == \
        "awk '{print $1}' 'x y' \"\\$q\" 'it'\\''s'"


def test_unbalanced_braces_and_missing_value():
    with pytest.raises(ConfigError, match="write a literal brace as"):
        parse_template("echo {v", "t")
    with pytest.raises(ConfigError, match=r"no value for \{v\}"):
        render(parse_template("echo {v}", "t"), {}, "t")


@pytest.mark.parametrize("template, value, rendered", [
    ("run --epochs {v} --lr 1", "20", "run --epochs 20 --lr 1"),  # as the old driver wrote it
    ("run --path {v};", "a/b.c:d,e@f%g+h-i", "run --path a/b.c:d,e@f%g+h-i;"),
    ("run --epochs={v}", "20", "run --epochs='20'"),  # inside a word: quoted
    ("run {v}>log", "2", "run '2'>log"),  # a bare 2 would redirect stderr
    ("{v} x", "if", "'if' x"),  # a bare if would be the reserved word
    ("{v}=x cmd", "PATH", "'PATH'=x cmd"),  # a bare PATH would be an assignment
    ("{v}() {{ :; }}", "f", "'f'() { :; }"),  # not a function definition
    ("run {v}", "x=1", "run 'x=1'"),  # a bare x=1 could be an assignment
    ("run {v}", "", "run ''"),
    ("[[ $x =~ {v} ]]", "a.b", "[[ $x =~ 'a.b' ]]"),  # bash: a bare word would be a regex
    ("alias ll=ls\n{v}", "ll", "alias ll=ls\n'll'"),  # an alias would capture a bare word
])
def test_plain_values_stay_bare_only_where_that_is_proven_the_same(template, value, rendered):
    assert render(parse_template(template, "t"), {"v": value}, "t") == rendered
