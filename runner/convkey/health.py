"""``convkey stats``: the ``convkey.dedup_health`` view as an aligned table or as JSON.

The table has one column per business and one line per figure, so that twenty-odd figures fit
in 100 columns; more businesses than fit side by side continue in further blocks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

WIDTH = 100
GAP = 2

# The view's columns in the order the table prints them (merges_by_reason expands into one line
# per reason right after merges_24h).
FIGURES = (
    "live_conversations", "tombstones", "live_with_key", "live_without_key", "duplicate_keys", "with_lead",
    "lid_only_waiting", "identities_lead", "identities_phone", "identities_lid", "identities_bsuid",
    "identities_pending", "merges_total", "merges_24h", "merges_by_reason", "identity_conflicts",
    "conflicts_different_lead", "conflicts_moved", "unmerges", "links_blocked_by_separation",
)


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    """One JSON object per business, in business order, keyed by the view's column names."""
    return json.dumps([dict(r) for r in rows], indent=2, ensure_ascii=False, sort_keys=False)


def _lines(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(label, one cell per business) for every line of the table."""
    reasons = sorted({reason for r in rows for reason in (r["merges_by_reason"] or {})})
    lines: list[tuple[str, list[str]]] = [("business", [str(r["business_id"]) for r in rows])]
    for name in FIGURES:
        if name != "merges_by_reason":
            lines.append((name, [str(r[name]) for r in rows]))
            continue
        for reason in reasons:
            cells = []
            for r in rows:
                by = (r["merges_by_reason"] or {}).get(reason)
                cells.append(f"{by['total']}/{by['last_24h']}" if by else "-")
            lines.append((f"  {reason} (total/24h)", cells))
    return lines


def to_table(rows: Sequence[dict[str, Any]], width: int = WIDTH) -> str:
    """The aligned table: labels on the left, one right-aligned column per business."""
    if not rows:
        return "no convkey data (no conversations, identities, merges or conflicts)"
    lines = _lines(rows)
    label_w = max(len(label) for label, _ in lines)
    col_w = max(len(cell) for _, cells in lines for cell in cells) + GAP
    per_block = max(1, (width - label_w) // col_w)
    blocks = []
    for start in range(0, len(rows), per_block):
        end = start + per_block
        blocks.append("\n".join(
            label.ljust(label_w) + "".join(cell.rjust(col_w) for cell in cells[start:end])
            for label, cells in lines))
    return "\n\n".join(blocks)
