"""What a notification says: what happened, where, since when, the last error, and a link.

One event makes one message; several pending events for one channel (a storm) make one
grouped message, so a channel hears once per rate-limit gap, not once per endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_LINES = 20  # events listed in a grouped message; the rest are counted

_TITLES = {
    "failure": "Failing",
    "reminder": "Still failing",
    "recovery": "Recovered",
    "slow": "Slow run",
    "paused": "Paused",
    "resumed": "Resumed",
    "quota": "Monthly run quota reached",
    "backup_failed": "Scheduled backup failed",
    "test": "Test notification",
}


EVENT_ID_HEADER = "X-Cronicorn-Event-Id"


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    payload: dict[str, Any]  # what JSON webhooks receive
    event_ids: tuple[int, ...] = ()  # outbox ids: the same on every redelivery

    @property
    def event_id(self) -> str:
        """The `X-Cronicorn-Event-Id` value (comma-separated for a grouped message), so a
        receiver can drop a message it already has after a crash between send and
        acknowledge; empty for a test message."""
        return ",".join(str(i) for i in self.event_ids if i > 0)


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    payload: Mapping[str, Any]


def link(web_url: str, payload: Mapping[str, Any]) -> str | None:
    """The run (or endpoint) in the dashboard."""
    base = web_url.rstrip("/")
    if payload.get("event") == "backup_failed":
        return f"{base}/admin/backups"
    endpoint = payload.get("endpointId")
    if not endpoint:
        return None
    run = payload.get("runId")
    return f"{base}/endpoints/{endpoint}/runs/{run}" if run else f"{base}/endpoints/{endpoint}"


def where(payload: Mapping[str, Any]) -> str:
    job, endpoint = payload.get("jobName"), payload.get("endpointName")
    return f"{job} / {endpoint}" if job else str(endpoint or "Cronicorn")


def describe(event: str, p: Mapping[str, Any]) -> str:
    """One sentence per event kind."""
    n = p.get("failures")
    since = f" since {p['since']}" if p.get("since") else ""
    if event == "failure":
        return f"Failed {n} time(s) in a row{since}."
    if event == "reminder":
        return f"Still failing: {n} failure(s) in a row{since}."
    if event == "recovery":
        return f"Succeeded again after {n} failure(s){since}."
    if event == "slow":
        return f"Run took {p.get('durationMs')} ms (bound {p.get('slowerThanMs')} ms)."
    if event == "paused":
        return f"Paused by the {p.get('by', 'system')} until {p.get('pausedUntil')}."
    if event == "resumed":
        return f"Resumed by the {p.get('by', 'system')}."
    if event == "quota":
        return f"This month's run quota is used up; runs resume at {p.get('nextRunAt')}."
    if event == "backup_failed":
        return f"The scheduled backup of {p.get('slot')} failed."
    if event == "test":
        return "This channel works: Cronicorn can reach it."
    return event


def _detail(e: Event, web_url: str) -> list[str]:
    p = e.payload
    lines = [describe(e.event, p)]
    if p.get("error") and e.event in ("failure", "reminder", "backup_failed"):
        lines.append(f"Last error: {p['error']}")
    url = link(web_url, p)
    if url:
        lines.append(url)
    return lines


def render(events: Sequence[Event], web_url: str) -> Message:
    payload = {
        "events": [{"id": e.id, "event": e.event, **e.payload} for e in events],
        "count": len(events),
    }
    ids = tuple(e.id for e in events)
    if len(events) == 1:
        e = events[0]
        title = f"{_TITLES.get(e.event, e.event)}: {where(e.payload)}"
        return Message(title, "\n".join(_detail(e, web_url)), payload, ids)
    counts: dict[str, int] = {}
    for e in events:
        counts[e.event] = counts.get(e.event, 0) + 1
    summary = ", ".join(f"{n} {_TITLES.get(k, k).lower()}" for k, n in counts.items())
    lines = [
        f"- {_TITLES.get(e.event, e.event)}: {where(e.payload)}: {describe(e.event, e.payload)}"
        for e in events[:MAX_LINES]
    ]
    if len(events) > MAX_LINES:
        lines.append(f"... and {len(events) - MAX_LINES} more")
    return Message(f"{len(events)} notifications: {summary}", "\n".join(lines), payload, ids)
