"""`/`: the dashboard. Counters, success rate, runs over time, lateness, runs by schedule
source and AI tokens for a range and a job chosen in the URL (`range`, or `from`/`to` dates;
`job`), and the recent activity timeline (`events`, `offset`) below.

Numbers come from `store.stats` (the aggregates `/api/dashboard/*` serves, without the
per-endpoint series the page does not show); every query is bounded by the user's runs in the
range and reads indexes (tests/web/test_web2_queries.py explains each one). A bad range is
shown as an error on the page with the default range in its place, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cronicorn.store import cursors, stats
from cronicorn.store.errors import Invalid
from cronicorn.web.deps import ClockDep, ConnDep, RuntimeDep, ViewerDep, count_param
from cronicorn.web.templating import render

router = APIRouter()

PRESETS = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "14d": ("Last 14 days", timedelta(days=14)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
}
DEFAULT_RANGE = "7d"
MAX_SPAN = timedelta(days=400)
EVENT_KINDS = ("all", "runs", "sessions")
PAGE = 20
SOURCE_LABELS = {
    "baseline-cron": "Baseline cron",
    "baseline-interval": "Baseline interval",
    "ai-interval": "AI interval",
    "ai-oneshot": "AI one-shot",
    "clamped-min": "Clamped to minimum",
    "clamped-max": "Clamped to maximum",
    "paused": "Paused",
    "misfire": "Catch-up after a miss",
    "test": "Test run",
    "quota": "Deferred by quota",
    "rule": "Response rule",
}


@dataclass(frozen=True)
class Range:
    key: str  # a preset, or "custom"
    start: datetime
    end: datetime
    error: str | None = None

    @property
    def label(self) -> str:
        if self.key in PRESETS:
            return PRESETS[self.key][0]
        last = (self.end - timedelta(days=1)).date()
        return f"{self.start.date().isoformat()} to {last.isoformat()}"


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_range(params: dict[str, str], now: datetime) -> Range:
    """A preset ending now, or whole UTC days `from`..`to` inclusive; anything else is the
    default range with the reason."""
    key = params.get("range", DEFAULT_RANGE)
    if key in PRESETS:
        return Range(key, now - PRESETS[key][1], now)
    default = Range(DEFAULT_RANGE, now - PRESETS[DEFAULT_RANGE][1], now)
    if key != "custom":
        return Range(**{**default.__dict__, "error": "Unknown range: showing the last 7 days."})
    first, last = _day(params.get("from", "")), _day(params.get("to", ""))
    if first is None or last is None:
        return Range(**{**default.__dict__, "error": "Dates must look like 2026-01-31."})
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last, time(), UTC) + timedelta(days=1)
    if end <= start:
        return Range(**{**default.__dict__, "error": "The end date is before the start date."})
    if end - start > MAX_SPAN:
        return Range(**{**default.__dict__, "error": "A range may span at most 400 days."})
    return Range("custom", start, end)


def _seconds(at: datetime) -> int:
    return int(at.timestamp())


def run_chart(data: stats.Dashboard) -> dict[str, Any]:
    points = data.runs
    return {
        "x": [_seconds(p.bucket) for p in points],
        "series": [
            {"label": "Success", "values": [p.success for p in points], "color": "--spark-ok"},
            {"label": "Failed", "values": [p.failed for p in points], "color": "--spark-bad"},
        ],
    }


def lateness_chart(points: list[stats.LatenessPoint], starts: list[datetime]) -> dict[str, Any]:
    by_bucket = {p.bucket: p for p in points}
    rows = [by_bucket.get(at) for at in starts]
    return {
        "x": [_seconds(at) for at in starts],
        "series": [
            {
                "label": "Average (s)",
                "values": [round(p.avg_ms / 1000, 1) if p else None for p in rows],
                "color": "--spark-ok",
            },
            {
                "label": "Worst (s)",
                "values": [round(p.max_ms / 1000, 1) if p else None for p in rows],
                "color": "--spark-bad",
            },
        ],
    }


def token_chart(data: stats.Dashboard) -> tuple[dict[str, Any], int]:
    buckets = data.buckets
    per = {point.bucket: point.tokens for point in data.session_totals}
    values = [per.get(at, 0) for at in buckets.starts]
    chart = {
        "x": [_seconds(at) for at in buckets.starts],
        "series": [{"label": "AI tokens", "values": values, "color": "--spark-run"}],
    }
    return chart, sum(values)


def _sources(data: stats.Dashboard) -> list[dict[str, Any]]:
    rows = data.sources
    total = sum(r.count for r in rows) or 1
    return [
        {
            "label": SOURCE_LABELS.get(r.source, r.source),
            "count": r.count,
            "pct": round(100 * r.count / total, 1),
        }
        for r in rows
    ]


def _job_filter(value: str, known: set[str]) -> str | None:
    """A job of the viewer's, else no filter (an unknown id is not an error worth a page)."""
    return value if value in known else None


@router.get("/")
async def dashboard(
    request: Request, viewer: ViewerDep, conn: ConnDep, clock: ClockDep, runtime: RuntimeDep
) -> Response:
    params = dict(request.query_params)
    now = clock()
    chosen = parse_range(params, now)
    jobs = await stats.job_choices(conn, viewer.user_id)
    job_id = _job_filter(params.get("job", ""), {job.id for job in jobs})
    events = params.get("events", "all")
    events = events if events in EVENT_KINDS else "all"
    page_at = _activity_page(params)
    query = stats.StatsQuery(
        viewer.user_id, chosen.start, chosen.end, now, job_id=job_id, series=False
    )
    async with runtime.side_reads.connection() as side:
        data = await stats.dashboard(conn, query, side=side)
    buckets = data.buckets
    late = data.lateness
    activity = await stats.activity(
        conn,
        stats.ActivityQuery(
            viewer.user_id,
            chosen.start,
            chosen.end,
            job_id=job_id,
            event_type=events,
            limit=PAGE,
            offset=page_at.offset,
            cursor=page_at.cursor,
            before=page_at.before,
        ),
        counted=data,  # same range and job: its totals are summed already
    )
    # Reading up from `before` ended at the newest event: this is the first page.
    position = 0 if page_at.before and activity.prev_cursor is None else page_at.position
    tokens, token_total = token_chart(data)
    return render(
        request,
        "home.html",
        viewer=viewer,
        title="Dashboard",
        presets=[(key, label) for key, (label, _) in PRESETS.items()],
        chosen=chosen,
        jobs=[job for job in jobs if job.status != "archived" or job.id == job_id],
        job_id=job_id or "",
        events=events,
        data=data,
        sources=_sources(data),
        run_chart=run_chart(data),
        late_chart=lateness_chart(late, buckets.starts),
        late_runs=sum(p.runs for p in late),
        late_worst=max((p.max_ms for p in late), default=0.0),
        token_chart=tokens,
        token_total=token_total,
        activity=activity,
        position=position,
        page=PAGE,
        base_query=_query(chosen, job_id),
        day=timedelta(days=1),
    )


@dataclass(frozen=True)
class ActivityPage:
    """Which page of the timeline: "Older" follows the cursor the last page handed out and
    "Newer" the one it names as the page before (a deep page costs what the first does,
    either way); both carry how many events come before the page, for the counts. An
    `offset` (links of earlier versions) still counts from the newest event."""

    cursor: str | None = None
    before: str | None = None
    offset: int = 0
    position: int = 0  # events before this page


MAX_OFFSET = 10_000


def _activity_page(params: dict[str, str]) -> ActivityPage:
    cursor, before = params.get("cursor", ""), params.get("before", "")
    if cursor or before:
        try:
            cursors.decode(cursor or before)
        except Invalid:  # not one we handed out: the newest page
            return ActivityPage()
        position = count_param(params.get("at", ""), 10**9)
        return ActivityPage(cursor or None, None if cursor else before, position=position)
    offset = count_param(params.get("offset", "0"), MAX_OFFSET)
    return ActivityPage(offset=offset, position=offset)


def _query(chosen: Range, job_id: str | None) -> dict[str, str]:
    """The range and job as URL parameters, for links that keep them."""
    out = {"range": chosen.key}
    if chosen.key == "custom":
        out["from"] = chosen.start.date().isoformat()
        out["to"] = (chosen.end - timedelta(days=1)).date().isoformat()
    if job_id:
        out["job"] = job_id
    return out
