"""Exit codes are defined once (driver.errors.ExitCode): the README's table and --help agree."""

from __future__ import annotations

import re

from conftest import REPO
from driver.errors import EXIT_CODE_MEANINGS, ExitCode, exit_code_for_signal, help_epilog


def readme_table() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    table = text[text.index("### Exit codes"):]
    table = table[:table.index("\n\n", table.index("|---|"))]
    return dict(re.findall(r"^\| ([\d / ]+) \| (.+) \|$", table, re.M))


def test_readme_table_lists_exactly_the_enum():
    rows = readme_table()
    singles = {int(k): v for k, v in rows.items() if "/" not in k}
    assert singles == {int(c): EXIT_CODE_MEANINGS[c] for c in ExitCode if c < 128}
    [signals] = [k for k in rows if "/" in k]
    assert [int(n) for n in signals.split(" / ")] == [int(c) for c in ExitCode if c >= 128]


def test_help_lists_every_exit_code(cli, write_config):
    write_config("[tasks.t]\ncommand_to_execute = 'true'\n")
    out = " ".join(cli("--help").stdout.split())
    assert " ".join(help_epilog().split()) in out
    for code in ExitCode:
        assert re.search(rf"\b{int(code)}\b", out), code


def test_signal_exit_codes_are_128_plus_the_signal_number():
    import signal

    for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2"):
        assert exit_code_for_signal(name) == 128 + getattr(signal, name)
