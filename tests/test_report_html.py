"""``bench-driver report``: a self-contained page, loaded in a real headless Chromium (Debian's
``chromium``): every section rendered after the page's script ran, no script error, a
screenshot. Where chromium is missing the test fails and says how to install it."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from plugins.history.store import open_history
from plugins.html_report.page import SECTIONS
from test_history_cli import CONFIG, LONG, TOY
from test_history_store import fake_record, write_series

INSTALL = "apt-get install -y chromium (as root, or with sudo)"


def chromium() -> str:
    """Debian's chromium, or a failure that says how to install it (never a skip)."""
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"chromium is not installed; the HTML report test needs a real headless "
                    f"browser: {INSTALL}")
    return found


def browse(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run headless chromium on *page* (offline: no background networking, no updates)."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *flags,
               page.absolute().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class Dom(HTMLParser):
    """What the test reads from the DOM chromium dumps after the scripts ran."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.sections: dict[str, dict[str, str]] = {}
        self.errors, self.headings, self.cells, self.marks, self._in = "", [], [], 0, ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = found
        elif tag == "section":
            self.sections[found.get("id", "")] = found
        elif tag == "circle" and found.get("class") == "regression":
            self.marks += 1
        self._in = "errors" if found.get("id") == "script-errors" else tag

    def handle_data(self, data: str) -> None:
        if self._in == "errors":
            self.errors += data
        elif self._in == "h3":
            self.headings.append(data)
        elif self._in == "td":
            self.cells.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in = ""


def search_run(directory: Path, seed: int) -> Path:
    """A run directory with a trials.jsonl as tasks/nas_search.py writes it."""
    directory.mkdir(parents=True)
    rng = random.Random(seed)
    lines = [json.dumps({"number": i, "config": f"cell{i}", "value": rng.uniform(50, 90),
                         "cost_s": rng.uniform(1, 20), "time_s": 2.0 * i, "info": {}})
             for i in range(30)]
    (directory / "trials.jsonl").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture
def report(tmp_path: Path, write_config, cli) -> Path:
    """A history with real runs (their timelines), an experiment, a series with a step and two
    searches; the report written from it."""
    (tmp_path / "toy.py").write_text(TOY)
    write_config(CONFIG)
    assert cli("experiment", "sizes", "--quiet").returncode == 0
    assert cli("--task-name", "toy", "--quiet").returncode == 0
    db = tmp_path / "bench-runs" / "history.sqlite"
    rng = random.Random(3)
    write_series(db, "epoch_time", [rng.gauss(10, 0.2) for _ in range(20)] + [14.0, 14.1],
                 task="train")
    with open_history(db) as history:
        for seed in (1, 2):
            run = search_run(tmp_path / "bench-runs" / "nas" / str(seed), seed)
            history.add_run(fake_record(run, {"best_value": 90.0}, 0.5 * seed, task="nas"))
    done = cli("report", "-o", "out")
    assert done.returncode == 0, done.stderr
    return tmp_path / "out" / "index.html"


def test_the_report_renders_every_section_in_chromium(report: Path, tmp_path: Path) -> None:
    dom = Dom(browse(report, tmp_path / "profile", "--dump-dom").stdout)
    assert dom.body.get("data-ready") == "yes", "the page's script did not run to its end"
    assert dom.errors == ""
    assert list(dom.sections) == list(SECTIONS)
    for name, attrs in dom.sections.items():
        assert attrs.get("data-rendered") == "yes", name
        assert int(attrs.get("data-items", "0")) >= 1, name  # a chart or table from data
    assert dom.marks == 1  # the step of train.epoch_time, marked where it starts
    assert f"toy.{LONG}" in dom.headings  # names in full
    assert "sizes (task toy)" in dom.headings
    assert {"size=small", "size=large", "0.75"} <= set(dom.cells)  # the pivot's rows
    assert any(h.startswith("Pareto front of nas") for h in dom.headings)
    shot = tmp_path / "report.png"
    browse(report, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    text = report.read_text()  # nothing to fetch: no external script, style, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "<link" not in text


def test_an_empty_history_still_renders_every_section(tmp_path: Path, cli) -> None:
    open_history(tmp_path / "h.sqlite").__exit__()
    assert cli("report", "--db", "h.sqlite", "-o", "out").returncode == 0
    dom = Dom(browse(tmp_path / "out" / "index.html", tmp_path / "profile", "--dump-dom").stdout)
    assert dom.errors == "" and dom.body.get("data-ready") == "yes"
    assert [a.get("data-rendered") for a in dom.sections.values()] == ["yes"] * len(SECTIONS)


def test_a_script_error_would_be_seen(tmp_path: Path, cli) -> None:
    open_history(tmp_path / "h.sqlite").__exit__()
    assert cli("report", "--db", "h.sqlite", "-o", "out").returncode == 0
    page = tmp_path / "out" / "index.html"
    page.write_text(page.read_text().replace(
        "</body>", "<script>undefinedFunction();</script></body>"))
    dom = Dom(browse(page, tmp_path / "profile", "--dump-dom").stdout)
    assert "undefinedFunction" in dom.errors
