"""Plain aligned text columns for the console (no box drawing: readable in CI logs and pipes)."""

from __future__ import annotations


def align_columns(table: list[list[str]], width: int | None = None) -> list[str]:
    """One line per row, columns padded to their widest cell and joined by two spaces. With
    `width`, the last column gives way: it is cut with an ellipsis so the line fits (at least 10
    characters of it are kept)."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    room = max(10, width - sum(widths) - 2 * len(widths)) if width is not None else None

    def line(row: list[str]) -> str:
        last = row[-1] if room is None or len(row[-1]) <= room else row[-1][: room - 1] + "…"
        return "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), last]).rstrip()

    return [line(row) for row in table]
