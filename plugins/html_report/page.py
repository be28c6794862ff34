"""The report page: one self-contained HTML file (inline CSS, inline SVG, a small inline script;
nothing loaded from the network, so it opens offline, from disk, in any browser).

The script builds the table of contents, the series filter, and marks each section
``data-rendered="yes"`` once it holds a chart, a table or its empty note (``data-items``: how
many charts and tables); a script error is caught
(``window.onerror``) and written into ``#script-errors``, where a reader, and the browser test,
sees it. ``<body data-ready="yes">`` says the script ran to the end.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from driver import __version__

if TYPE_CHECKING:
    from plugins.history.check import CheckOptions
    from plugins.history.store import History

SECTIONS = ("trends", "timeline", "experiments", "nas")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { border-bottom: 1px solid #ccc; } h3 { font-size: 1em;
  overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd;
  padding: 2px 6px; overflow-wrap: break-word; text-align: left; vertical-align: top; }
.pivot { max-width: none; overflow-x: auto; }
.trend, .pareto, .pivot { display: inline-block; vertical-align: top; margin: 0 1em 1em 0;
  max-width: 660px; }
.caption, .empty { color: #555; font-size: 0.9em; overflow-wrap: anywhere; }
.legend { list-style: none; padding: 0; font-size: 0.9em; overflow-wrap: anywhere; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; }
#script-errors { color: #b00; white-space: pre-wrap; }
nav a { margin-right: 1em; }
"""

SCRIPT = """
(function () {
  var errors = document.getElementById("script-errors");
  window.onerror = function (message, source, line) {
    errors.hidden = false;
    errors.textContent += "script error: " + message + " (line " + line + ")\\n";
  };
  var nav = document.getElementById("contents");
  document.querySelectorAll("section.report-section").forEach(function (section) {
    var link = document.createElement("a");
    link.href = "#" + section.id;
    link.textContent = section.querySelector("h2").textContent;
    nav.appendChild(link);
    var filled = section.querySelector("svg, table, p.empty");
    section.dataset.rendered = filled ? "yes" : "no";
    section.dataset.items = String(section.querySelectorAll("svg, table").length);
  });
  var filter = document.getElementById("series-filter");
  if (filter) {
    filter.addEventListener("input", function () {
      var wanted = filter.value.toLowerCase();
      document.querySelectorAll(".trend").forEach(function (block) {
        block.hidden = block.dataset.series.toLowerCase().indexOf(wanted) < 0;
      });
    });
  }
  document.body.dataset.ready = "yes";
})();
"""


def render(history: History, options: CheckOptions, generated_at: str) -> str:
    """The whole page for *history*."""
    from plugins.html_report import sections as s

    counts = history.counts()
    body = "".join([
        s.section("trends", "Trends per task and metric", s.trends(history.points(), options)),
        s.section("timeline", "Memory timeline of the last run", s.timeline(history)),
        s.section("experiments", "Experiments (variant x metric)", s.experiments(history)),
        s.section("nas", "NAS searches: anytime curves and Pareto fronts", s.nas(history)),
    ])
    head = (f"<h1>bench-driver report</h1><p class=\"caption\">{escape(str(history.path))}: "
            f"{counts['runs']} run(s), {counts['sets']} set(s), {counts['experiments']} "
            f"experiment(s); written {escape(generated_at)} by bench-driver {__version__}. "
            f"Regressions: robust lookback z-score over {options.lookback} points, z &gt; "
            f"{options.z_threshold:g} and worse by more than {escape(str(options.threshold))} "
            f"(docs/history.md).</p><pre id=\"script-errors\" hidden></pre>"
            f"<nav id=\"contents\"></nav>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>bench-driver report</title><style>{STYLE}</style></head>"
            f"<body>{head}{body}<script>{SCRIPT}</script></body></html>\n")


def write_report(history: History, options: CheckOptions, out_dir: Path,
                 generated_at: str) -> Path:
    """Write ``OUT_DIR/index.html`` atomically; its path."""
    from driver.results import write_text_atomic

    path = out_dir / "index.html"
    write_text_atomic(path, render(history, options, generated_at))
    return path
