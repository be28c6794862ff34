"""Tables on a terminal that never cut a name, whatever its width (rich).

rich shrinks a table that is wider than the terminal by folding or truncating its cells
("traini…", "nas201_searchers/searche…"). Here no cell is ever shortened: the table is measured
first; when it is too wide, its value columns are split into several tables, each repeating the
key columns (the names), as pandas wraps a wide frame; when even the names and one value do not
fit, each row is printed as a block of ``header value`` pairs, wrapped between pairs. Cells are
rich Text, so names from a config or a log are never read as markup.
"""

from __future__ import annotations

from typing import Any, Sequence

#: The gap between columns (no vertical rules: they cost width, and names need it).
_PADDING = (0, 1)


def print_table(console: Any, headers: Sequence[str], rows: Sequence[Sequence[str]],
                keys: int = 1, right: Sequence[int] = (), title: Any = None,
                styles: Sequence[str | None] | None = None) -> None:
    """Print *rows* under *headers* on the rich *console*, no cell ever cut.

    *keys*: how many leading columns name a row (repeated when the table is split); *right*:
    indices of right-aligned columns (numbers); *styles*: a rich style per row, or None.
    """
    chunks = _split(console, headers, rows, keys, right, title, styles)
    if chunks is None:
        _print_blocks(console, headers, rows, keys, title, styles)
        return
    for table in chunks:
        console.print(table)


def _split(console: Any, headers: Sequence[str], rows: Sequence[Sequence[str]], keys: int,
           right: Sequence[int], title: Any, styles: Sequence[str | None] | None
           ) -> list[Any] | None:
    """Tables of the key columns and as many value columns as fit; None if one does not."""
    names = list(range(keys))
    chunks: list[list[int]] = []
    for column in range(keys, len(headers)):
        if chunks and _fits(console, _table(headers, rows, names + chunks[-1] + [column], right,
                                            None, styles)):
            chunks[-1].append(column)
        elif _fits(console, _table(headers, rows, names + [column], right, None, styles)):
            chunks.append([column])
        else:
            return None
    chunks = chunks or [[]]
    return [_table(headers, rows, names + chunk, right, title if i == 0 else None, styles)
            for i, chunk in enumerate(chunks)]


def _fits(console: Any, table: Any) -> bool:
    from rich.measure import Measurement

    unbounded = console.options.update(width=10 ** 6)  # rich clamps a measure to the width
    return bool(Measurement.get(console, unbounded, table).maximum <= console.width)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], columns: Sequence[int],
           right: Sequence[int], title: Any, styles: Sequence[str | None] | None) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=_PADDING, show_edge=False,
                  title_justify="left")
    for i in columns:
        table.add_column(Text(headers[i]), justify="right" if i in right else "left",
                         no_wrap=True)
    for n, row in enumerate(rows):
        table.add_row(*(Text(row[i]) for i in columns), style=styles[n] if styles else None)
    return table


def _print_blocks(console: Any, headers: Sequence[str], rows: Sequence[Sequence[str]],
                  keys: int, title: Any, styles: Sequence[str | None] | None) -> None:
    """Each row as its names, then ``header value`` pairs wrapped between pairs (a terminal
    too narrow for any table)."""
    from rich.text import Text

    if title is not None:
        console.print(title)
    for n, row in enumerate(rows):
        style = (styles[n] if styles else None) or ""
        console.print(Text("  ".join(c for c in row[:keys] if c), style=f"bold {style}".strip()))
        pairs = [f"{h} {v}" for h, v in zip(headers[keys:], row[keys:]) if v]
        console.print(Text("  " + "   ".join(pairs), style=style))


def print_plain(stream: Any, headers: Sequence[str], rows: Sequence[Sequence[str]],
                right: Sequence[int] = ()) -> None:
    """*rows* as aligned plain text (CI logs, pipes): every cell whole, two spaces apart."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip(), file=stream)
