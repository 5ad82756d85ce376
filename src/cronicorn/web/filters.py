"""Formatting at the edge: the Jinja filters that turn typed values into text and markup.

Everything here escapes what it is given: a value that reaches a page through a filter is as
safe as one written with `{{ }}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

STATUS_LABELS = {
    "success": "Success",
    "failed": "Failed",
    "running": "Running",
    "skipped": "Skipped",
    "active": "Active",
    "paused": "Paused",
    "archived": "Archived",
}
# A shape per outcome as well as a colour, so the sparkline reads without colour vision.
_SPARK = {"success": ("ok", 10), "failed": ("bad", 20), "running": ("run", 14)}


def utc_text(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def when(at: datetime | None, empty: str = "—") -> Markup:
    """A `<time>` in UTC; the page's script shows it in the browser's zone, UTC on hover."""
    if at is None:
        return Markup("<span class=muted>{}</span>").format(empty)
    iso = at.isoformat()
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        iso, utc_text(at), at.strftime("%Y-%m-%d %H:%M UTC")
    )


def duration(ms: int | float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{int(ms)} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def every(ms: int | None) -> str:
    """An interval as words ("every 5 min")."""
    return "—" if ms is None else f"every {duration(ms)}"


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("-", " ").capitalize())


def pretty_json(value: Any) -> str:
    """Indented JSON text (escaped by autoescape where it is shown)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def sparkline(outcomes: Sequence[str], width: int = 120, height: int = 24) -> Markup:
    """Recent outcomes, oldest first, as small bars: tall = failed, short = success, mid =
    running; colour as well as height tells them apart. A text summary rides along for
    screen readers."""
    if not outcomes:
        return Markup('<span class="muted">No runs yet</span>')
    step = width / max(len(outcomes), 1)
    bars = []
    for i, outcome in enumerate(outcomes):
        kind, h = _SPARK.get(outcome, ("run", 14))
        x = round(i * step + 1, 1)
        bars.append(
            Markup('<rect class="{}" x="{}" y="{}" width="{}" height="{}"/>').format(
                kind, x, height - h, max(round(step - 2, 1), 1), h
            )
        )
    failed = sum(1 for o in outcomes if o == "failed")
    label = f"Last {len(outcomes)} runs: {len(outcomes) - failed} ok, {failed} failed"
    return Markup(
        '<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-label="{label}"><title>{label}</title>{bars}</svg>'
    ).format(w=width, h=height, label=label, bars=Markup("").join(bars))


def truncate_middle(text: str, keep: int = 60) -> str:
    if len(text) <= keep:
        return text
    half = (keep - 1) // 2
    return text[:half] + "…" + text[-half:]


FILTERS = {
    "when": when,
    "duration": duration,
    "every": every,
    "status_label": status_label,
    "pretty_json": pretty_json,
    "sparkline": sparkline,
    "truncate_middle": truncate_middle,
    "utc_text": utc_text,
    "e": escape,
}
