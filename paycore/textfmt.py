"""Plain-text tables for operators' terminals."""
from __future__ import annotations

from typing import Any


def cell(v: Any) -> str:
    if v is None:
        return "-"
    if hasattr(v, "isoformat"):
        return v.isoformat(timespec="seconds")
    return str(v)


def render_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(out)
