"""Aligned plain-text tables and times for the `mlstack` command's output."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, two spaces apart; None shows as `-`."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def epoch_to_iso(seconds: float) -> str:
    """`1700000000.5` → `2023-11-14T22:13:20.500Z` (UTC, milliseconds)."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def short(items: Sequence[object], most: int = 3) -> str:
    """The first `most` items comma-separated, with how many more."""
    shown = ",".join(str(i) for i in items[:most])
    return f"{shown},+{len(items) - most}" if len(items) > most else shown or "-"
