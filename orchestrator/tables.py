"""What every report shares, with no imports of its own: the markdown table writer and the plots' width bound."""

from __future__ import annotations

MAX_PLOT_INCHES = 14.0  # a plot's width stays bounded however many languages (1,680 px at 120 dpi)


def markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table (the one writer of every table this project prints into a file)."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]
