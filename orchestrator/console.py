"""The terminal: one `rich` console and the table layout every command prints with."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich import box
from rich.console import Console
from rich.table import Table

# Tables are wide (a column per split/resource): don't squeeze them to 80 columns in logs and CI.
console = Console(width=None if sys.stdout.isatty() else 160)


def table(
    title: str, rows: Iterable[dict], columns: list[str], left: tuple[str, ...] = ("language", "text", "dictionary")
) -> Table:
    """Rows of dicts as a table: ``left`` columns left-aligned, the rest (numbers) right-aligned."""
    # no vertical rules, one space between columns: wide tables keep their columns
    out = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for col in columns:
        out.add_column(col, justify="left" if col in left else "right", no_wrap=col in left)
    for row in rows:
        cells = []
        for col in columns:
            v = row.get(col, "")
            cells.append(f"{v:.1%}" if col == "test_coverage" and v != "" else str(v))
        out.add_row(*cells)
    return out
