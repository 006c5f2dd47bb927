"""The terminal: one `rich` console and the table layout every command prints with."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

# Tables are wide (a column per split/resource): don't squeeze them to 80 columns in logs and CI.
console = Console(width=None if sys.stdout.isatty() else 160)


def table(
    title: str, rows: Iterable[dict], columns: list[str], left: tuple[str, ...] = ("language", "text", "dictionary")
) -> Table:
    """Rows of dicts as a table: ``left`` columns left-aligned, the rest (numbers) right-aligned."""
    out = Table(title=title)
    for col in columns:
        out.add_column(col, justify="left" if col in left else "right")
    for row in rows:
        cells = []
        for col in columns:
            v = row.get(col, "")
            cells.append(f"{v:.1%}" if col == "test_coverage" and v != "" else str(v))
        out.add_row(*cells)
    return out
