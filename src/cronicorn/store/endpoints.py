"""Endpoints: create, edit, archive, delete, hints, pause, failure reset. Scoped by user.

Every write is one transaction step: the row is locked (`SELECT … FOR UPDATE`), the new values
are checked as a whole (exactly one baseline, min ≤ max, valid cron and time zone), the next
run is planned by the domain governor when anything that steers scheduling changed, and one
UPDATE writes everything and bumps `version`. Concurrent edits therefore serialise: the last
one wins and nothing is ever half-written. When `next_run_at` moves earlier the schedulers
are woken (NOTIFY, delivered on commit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import (
    DEFAULT_TIMEZONE,
    MIN_GAP_MS,
    NO_QUOTAS,
    CronError,
    Quotas,
    ScheduleState,
    TimezoneError,
    plan_initial,
    plan_on_change,
    validate_cron,
    validate_timezone,
)
from cronicorn.domain import preview as preview_plans
from cronicorn.domain.errors import RuleError
from cronicorn.domain.ids import new_id
from cronicorn.domain.overlap import describe as describe_overlap
from cronicorn.domain.overlap import parse_overlap
from cronicorn.domain.retry import describe as describe_retry
from cronicorn.domain.retry import parse_retry
from cronicorn.store import jobs as job_store
from cronicorn.store.errors import Conflict, Invalid, NotFound
from cronicorn.store.quotas import check_endpoint_room, open_meter
from cronicorn.store.tables import endpoints, jobs
from cronicorn.store.wakeups import wake_schedulers

# What a user configures (snake_case, as the columns). Everything else is state.
CONFIG_FIELDS = (
    "name",
    "description",
    "url",
    "method",
    "headers_json",
    "body_json",
    "timeout_ms",
    "max_execution_time_ms",
    "max_response_size_kb",
    "baseline_cron",
    "baseline_interval_ms",
    "timezone",
    "min_interval_ms",
    "max_interval_ms",
    "ai_mode",
    "assertions",
    "rules",
    "retry",
    "overlap",
    "max_concurrent",
)
# Config fields whose change moves `next_run_at`.
SCHEDULE_FIELDS = frozenset(
    {"baseline_cron", "baseline_interval_ms", "timezone", "min_interval_ms", "max_interval_ms"}
)
# Config fields that have a default instead of NULL when cleared.
DEFAULTS: dict[str, Any] = {
    "method": "GET",
    "timezone": "UTC",
    "ai_mode": "inherit",
    "overlap": "skip",
}


@dataclass(frozen=True)
class EndpointRow:
    id: str
    job_id: str
    user_id: str
    name: str
    description: str | None
    url: str
    method: str
    headers_json: dict[str, str] | None
    body_json: Any
    timeout_ms: int | None
    max_execution_time_ms: int | None
    max_response_size_kb: int | None
    baseline_cron: str | None
    baseline_interval_ms: int | None
    timezone: str
    min_interval_ms: int | None
    max_interval_ms: int | None
    hint_interval_ms: int | None
    hint_interval_expires_at: datetime | None
    hint_oneshot_at: datetime | None
    hint_oneshot_expires_at: datetime | None
    hint_reason: str | None
    hint_source: str | None
    paused_until: datetime | None
    archived_at: datetime | None
    next_run_at: datetime
    next_run_source: str
    last_due_at: datetime | None
    last_run_at: datetime | None
    failure_count: int
    lease_owner: str | None
    lease_until: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    ai_mode: str = "inherit"  # the AI planner: inherit (the job's) | off | suggest | auto
    assertions: Any = None  # {statuses, conditions} as `domain.rules` accepted; None: 2xx
    rules: Any = None  # ordered response rules as `domain.rules` accepted; None: none
    retry: Any = None  # in-run retry policy as `domain.retry` accepted; None: no retries
    overlap: str = "skip"  # a slot due while a run goes on: skip | queue_one | allow
    max_concurrent: int | None = None  # `allow`: runs at once (None: the domain default)


_NAMES = tuple(f.name for f in fields(EndpointRow))


def endpoint_from(m: RowMapping) -> EndpointRow:
    return EndpointRow(**{name: m[name] for name in _NAMES})


def config_of(row: EndpointRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in CONFIG_FIELDS}


# -- planning (the domain governor) ---------------------------------------------------------
def schedule_state(row: EndpointRow, *, fresh: bool = False) -> ScheduleState:
    """The governor's view of a row (`fresh`: a new endpoint, nothing planned yet)."""
    values = {name: getattr(row, name) for name in _STATE_FIELDS}
    if fresh:
        values["next_run_at"] = None
    return ScheduleState(**values)


_STATE_FIELDS = tuple(f.name for f in fields(ScheduleState))


def _plan(
    row: EndpointRow, now: datetime, *, initial: bool, fresh: bool = False
) -> tuple[datetime, str]:
    """`plan_initial` for a new or re-scheduled endpoint (no catch-up run), `plan_on_change`
    for every other change (one catch-up run if a slot was missed, never one per slot)."""
    if initial:
        plan = plan_initial(schedule_state(row, fresh=fresh), now)
    else:
        plan = plan_on_change(schedule_state(row), now)
    return plan.at, plan.source


def _check_schedule(values: dict[str, Any]) -> None:
    """Cron syntax and IANA time zone, as the domain defines them."""
    try:
        validate_timezone(values.get("timezone") or DEFAULT_TIMEZONE)
    except TimezoneError as exc:
        raise Invalid("timezone", str(exc)) from None
    cron = values.get("baseline_cron")
    if cron is not None:
        try:
            validate_cron(cron)
        except CronError as exc:
            raise Invalid("baseline_cron", str(exc)) from None


# -- reads ----------------------------------------------------------------------------------
async def get(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    *,
    job_id: str | None = None,
    for_update: bool = False,
) -> EndpointRow:
    """The caller's endpoint; with `job_id`, it must also belong to that job (else 404)."""
    query = select(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.user_id == user_id)
    if job_id is not None:
        query = query.where(endpoints.c.job_id == job_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("Endpoint")
    return endpoint_from(row._mapping)


async def list_for_job(conn: AsyncConnection, user_id: str, job_id: str) -> list[EndpointRow]:
    """Every endpoint of the caller's job, archived ones included, oldest first."""
    await job_store.get(conn, user_id, job_id)
    rows = await conn.execute(
        select(endpoints)
        .where(endpoints.c.job_id == job_id, endpoints.c.user_id == user_id)
        .order_by(endpoints.c.created_at, endpoints.c.id)
    )
    return [endpoint_from(r._mapping) for r in rows]


# -- validation -----------------------------------------------------------------------------
def check_config(values: dict[str, Any]) -> None:
    """Whole-row rules (request models check each field alone)."""
    has_cron = values.get("baseline_cron") is not None
    has_interval = values.get("baseline_interval_ms") is not None
    if has_cron == has_interval:
        raise Invalid(
            "baseline_cron", "exactly one of baselineCron or baselineIntervalMs must be set"
        )
    interval = values.get("baseline_interval_ms")
    if interval is not None and interval < MIN_INTERVAL_MS:
        raise Invalid("baseline_interval_ms", f"must be at least {MIN_INTERVAL_MS} ms")
    low, high = values.get("min_interval_ms"), values.get("max_interval_ms")
    if low is not None and high is not None and low > high:
        raise Invalid("min_interval_ms", "minIntervalMs must not exceed maxIntervalMs")
    _check_schedule(values)
    try:
        parse_overlap(values.get("overlap"), values.get("max_concurrent"))
    except RuleError as exc:
        field = "max_concurrent" if str(exc).startswith("maxConcurrent") else "overlap"
        raise Invalid(field, str(exc)) from None


MIN_INTERVAL_MS = MIN_GAP_MS


async def check_rule_targets(conn: AsyncConnection, user_id: str, job_id: str, rules: Any) -> None:
    """A rule may act only on an endpoint of the same job (and so of the same user): any
    other id, archived, foreign or unknown, is refused alike (no existence oracle)."""
    if not isinstance(rules, list):
        return
    wanted = {
        i: r["then"]["target"] for i, r in enumerate(rules) if r.get("then", {}).get("target")
    }
    if not wanted:
        return
    found = set(
        (
            await conn.execute(
                select(endpoints.c.id).where(
                    endpoints.c.id.in_(set(wanted.values())),
                    endpoints.c.user_id == user_id,
                    endpoints.c.job_id == job_id,
                    endpoints.c.archived_at.is_(None),
                )
            )
        ).scalars()
    )
    for index, target in wanted.items():
        if target not in found:
            raise Invalid(
                "rules",
                f"rules[{index}].then.target: {target} is not an endpoint of this job",
            )


def apply_interval_quota(values: dict[str, Any], quotas: Quotas) -> dict[str, Any]:
    """QUOTA_MIN_INTERVAL_MS on a schedule being set: a baseline interval or maximum below
    it is refused, the minimum interval is raised to it (so hints and cron slots keep to it)."""
    floor = quotas.min_interval_ms
    if floor <= 0:
        return values
    rule = f"this server's minimum interval is {floor} ms (QUOTA_MIN_INTERVAL_MS)"
    for name in ("baseline_interval_ms", "max_interval_ms"):
        value = values.get(name)
        if value is not None and value < floor:
            raise Invalid(name, f"{value} ms is too short: {rule}")
    return {**values, "min_interval_ms": quotas.interval_floor(values.get("min_interval_ms"))}


def merge_changes(before: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply a PATCH: explicit nulls clear (or restore the default); setting one baseline
    kind clears the other unless the same request sets both (reference defect 13)."""
    values = dict(before)
    for key, value in changes.items():
        values[key] = DEFAULTS.get(key) if value is None and key in DEFAULTS else value
    if changes.get("baseline_cron") is not None and "baseline_interval_ms" not in changes:
        values["baseline_interval_ms"] = None
    if changes.get("baseline_interval_ms") is not None and "baseline_cron" not in changes:
        values["baseline_cron"] = None
    return values


# -- writes ---------------------------------------------------------------------------------
async def create(
    conn: AsyncConnection,
    user_id: str,
    job_id: str,
    config: dict[str, Any],
    now: datetime,
    *,
    quotas: Quotas = NO_QUOTAS,
) -> EndpointRow:
    """Add an endpoint to the caller's (non-archived) job; its first run is planned now."""
    job = await job_store.get(conn, user_id, job_id, for_share=True)
    if job.status == "archived":
        raise Conflict("Job is archived; endpoints cannot be added to it")
    values = {name: config.get(name, DEFAULTS.get(name)) for name in CONFIG_FIELDS}
    values = apply_interval_quota(values, quotas)
    check_config(values)
    await check_rule_targets(conn, user_id, job_id, values.get("rules"))
    await check_endpoint_room(conn, user_id, quotas)
    await open_meter(conn, user_id, quotas, now)
    draft = _draft(values, user_id=user_id, job_id=job_id, now=now)
    next_run_at, source = _plan(draft, now, initial=True, fresh=True)
    row = (
        await conn.execute(
            insert(endpoints)
            .values(
                id=draft.id,
                job_id=job_id,
                user_id=user_id,
                **values,
                next_run_at=next_run_at,
                next_run_source=source,
                created_at=now,
                updated_at=now,
            )
            .returning(endpoints)
        )
    ).one()
    await wake_schedulers(conn, next_run_at)
    return endpoint_from(row._mapping)


def _draft(values: dict[str, Any], *, user_id: str, job_id: str, now: datetime) -> EndpointRow:
    """An endpoint as it would be stored, for the governor to plan before the INSERT."""
    return EndpointRow(
        id=new_id(),
        job_id=job_id,
        user_id=user_id,
        **values,
        hint_interval_ms=None,
        hint_interval_expires_at=None,
        hint_oneshot_at=None,
        hint_oneshot_expires_at=None,
        hint_reason=None,
        hint_source=None,
        paused_until=None,
        archived_at=None,
        next_run_at=now,
        next_run_source="baseline-interval",
        last_due_at=None,
        last_run_at=None,
        failure_count=0,
        lease_owner=None,
        lease_until=None,
        version=1,
        created_at=now,
        updated_at=now,
    )


Change = Callable[[EndpointRow], dict[str, Any]]


async def mutate(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    change: Change,
    now: datetime,
    *,
    job_id: str | None = None,
    replan: bool = True,
    schedule_edit: bool = False,
) -> EndpointRow:
    """Lock the row, compute the new column values from it, replan, write in one UPDATE.

    `change` returns the columns to write (it may raise `Invalid`/`Conflict`); with `replan`,
    the governor plans the next run from the changed row (as a fresh schedule, without a
    catch-up run, when `schedule_edit`)."""
    before = await get(conn, user_id, endpoint_id, job_id=job_id, for_update=True)
    values = change(before)
    if replan:
        after = replace(before, **values)
        next_run_at, source = _plan(after, now, initial=schedule_edit)
        values = {**values, "next_run_at": next_run_at, "next_run_source": source}
    row = (
        await conn.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id, endpoints.c.user_id == user_id)
            .values(**values, version=endpoints.c.version + 1, updated_at=now)
            .returning(endpoints)
        )
    ).one()
    result = endpoint_from(row._mapping)
    if result.next_run_at < before.next_run_at:
        await wake_schedulers(conn, result.next_run_at)
    return result


async def update_config(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    changes: dict[str, Any],
    now: datetime,
    *,
    job_id: str | None = None,
    quotas: Quotas = NO_QUOTAS,
) -> EndpointRow:
    """PATCH: merge, check the whole row, replan only if a scheduling field changed (an
    edited schedule must keep to the interval quota)."""
    before = await get(conn, user_id, endpoint_id, job_id=job_id, for_update=True)
    current = config_of(before)
    values = merge_changes(current, changes)
    if SCHEDULE_FIELDS & {k for k, v in values.items() if v != current[k]}:
        values = apply_interval_quota(values, quotas)
    check_config(values)
    if "rules" in changes:
        await check_rule_targets(conn, user_id, before.job_id, values.get("rules"))
    diff = {k: v for k, v in values.items() if v != current[k]}
    replan = bool(SCHEDULE_FIELDS & diff.keys())
    return await mutate(
        conn,
        user_id,
        endpoint_id,
        lambda _row: diff,
        now,
        job_id=job_id,
        replan=replan,
        schedule_edit=replan,
    )


async def archive(
    conn: AsyncConnection, user_id: str, endpoint_id: str, now: datetime, *, job_id: str
) -> EndpointRow:
    """Soft delete: the scheduler stops claiming it; runs stay readable. Idempotent."""

    def change(row: EndpointRow) -> dict[str, Any]:
        return {} if row.archived_at is not None else {"archived_at": now}

    return await mutate(conn, user_id, endpoint_id, change, now, job_id=job_id, replan=False)


async def delete_endpoint(
    conn: AsyncConnection, user_id: str, endpoint_id: str, *, job_id: str
) -> None:
    """Hard delete; runs and AI sessions cascade."""
    result = await conn.execute(
        delete(endpoints)
        .where(
            endpoints.c.id == endpoint_id,
            endpoints.c.user_id == user_id,
            endpoints.c.job_id == job_id,
        )
        .returning(endpoints.c.id)
    )
    if result.first() is None:
        raise NotFound("Endpoint")


# -- steering: hints, pause, failures -------------------------------------------------------
HINT_SOURCE_USER = "user"


async def set_interval_hint(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    *,
    interval_ms: int,
    expires_at: datetime,
    reason: str | None,
    now: datetime,
    source: str = HINT_SOURCE_USER,
    quotas: Quotas = NO_QUOTAS,
) -> EndpointRow:
    """A temporary interval (inside the endpoint's min/max, and not below the interval
    quota), with its own expiry; a one-shot hint already set keeps its own expiry (reference
    defect 10)."""

    def change(row: EndpointRow) -> dict[str, Any]:
        low = quotas.interval_floor(row.min_interval_ms)
        if low is not None and interval_ms < low:
            raise Invalid("interval_ms", f"below the endpoint's minimum ({low} ms)")
        if row.max_interval_ms is not None and interval_ms > row.max_interval_ms:
            raise Invalid(
                "interval_ms", f"exceeds the endpoint's maximum ({row.max_interval_ms} ms)"
            )
        return {
            "hint_interval_ms": interval_ms,
            "hint_interval_expires_at": expires_at,
            "hint_reason": reason,
            "hint_source": source,
        }

    return await mutate(conn, user_id, endpoint_id, change, now)


async def set_oneshot_hint(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    *,
    at: datetime,
    expires_at: datetime,
    reason: str | None,
    now: datetime,
    source: str = HINT_SOURCE_USER,
) -> EndpointRow:
    """Run once at `at` (strictly in the future, before the hint expires)."""
    if at <= now:
        raise Invalid("next_run_at", "must be in the future")
    if at > expires_at:
        raise Invalid("ttl_minutes", "the hint would expire before it runs; raise ttlMinutes")

    def change(_row: EndpointRow) -> dict[str, Any]:
        return {
            "hint_oneshot_at": at,
            "hint_oneshot_expires_at": expires_at,
            "hint_reason": reason,
            "hint_source": source,
        }

    return await mutate(conn, user_id, endpoint_id, change, now)


async def clear_hints(
    conn: AsyncConnection, user_id: str, endpoint_id: str, now: datetime
) -> EndpointRow:
    """Drop both hint kinds and replan from the baseline (the reference kept a next run
    that a cleared hint had set)."""

    def change(_row: EndpointRow) -> dict[str, Any]:
        return {
            "hint_interval_ms": None,
            "hint_interval_expires_at": None,
            "hint_oneshot_at": None,
            "hint_oneshot_expires_at": None,
            "hint_reason": None,
            "hint_source": None,
        }

    return await mutate(conn, user_id, endpoint_id, change, now)


async def set_paused_until(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    paused_until: datetime | None,
    now: datetime,
) -> EndpointRow:
    """Pause until an instant (None resumes). Resuming replans with the misfire rule: an
    endpoint that missed a slot during the pause runs once, and that run starts a new grid
    (the next one is a whole interval later: no burst); a pause that missed nothing adds no
    run."""
    return await mutate(
        conn, user_id, endpoint_id, lambda _row: {"paused_until": paused_until}, now
    )


async def reset_failures(
    conn: AsyncConnection, user_id: str, endpoint_id: str, now: datetime
) -> EndpointRow:
    """Zero the failure streak; replanning drops the backoff it caused."""
    return await mutate(conn, user_id, endpoint_id, lambda _row: {"failure_count": 0}, now)


async def reschedule_job(
    conn: AsyncConnection, user_id: str, job_id: str, now: datetime
) -> list[EndpointRow]:
    """After a job resumes: replan each live endpoint (misfire rule, so every endpoint that
    missed slots while paused runs at most once, not once per slot)."""
    rows = await conn.execute(
        select(endpoints.c.id)
        .where(
            endpoints.c.job_id == job_id,
            endpoints.c.user_id == user_id,
            endpoints.c.archived_at.is_(None),
        )
        .order_by(endpoints.c.id)
    )
    return [
        await mutate(conn, user_id, endpoint_id, lambda _row: {}, now)
        for (endpoint_id,) in rows.all()
    ]


async def lock_all_of(conn: AsyncConnection, user_id: str) -> None:
    """For a transaction (an import) that edits many of the user's jobs and endpoints in its
    own order. First a per-user advisory lock, so two imports of the same user run one after
    the other (the second sees the jobs the first created, instead of creating them again);
    then the user's live jobs, then their live endpoints, each in id order: taken up front in
    the order every other writer uses (a job before its endpoints, several endpoints by id),
    so the import cannot deadlock with a job pause or a scheduler's batch write."""
    await conn.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended("cronicorn-import:" + user_id, 0)))
    )
    await conn.execute(
        select(jobs.c.id)
        .where(jobs.c.user_id == user_id, jobs.c.status != "archived")
        .order_by(jobs.c.id)
        .with_for_update()
    )
    await conn.execute(
        select(endpoints.c.id)
        .where(endpoints.c.user_id == user_id, endpoints.c.archived_at.is_(None))
        .order_by(endpoints.c.id)
        .with_for_update()
    )


async def find_live_by_name(
    conn: AsyncConnection, user_id: str, job_id: str, name: str
) -> EndpointRow | None:
    """The job's newest non-archived endpoint with this name (import matches by name)."""
    row = (
        await conn.execute(
            select(endpoints)
            .where(
                endpoints.c.job_id == job_id,
                endpoints.c.user_id == user_id,
                endpoints.c.name == name,
                endpoints.c.archived_at.is_(None),
            )
            .order_by(endpoints.c.created_at.desc())
            .limit(1)
        )
    ).first()
    return endpoint_from(row._mapping) if row is not None else None


async def preview(
    conn: AsyncConnection, user_id: str, endpoint_id: str, now: datetime, count: int
) -> list[dict[str, Any]]:
    """The next `count` planned runs (instant, source, why) if nothing changes and every run
    succeeds."""
    row = await get(conn, user_id, endpoint_id)
    if row.archived_at is not None:
        return []
    plans = preview_plans(schedule_state(row), now, count, next_source=row.next_run_source)
    by_rule = row.hint_source == HINT_SOURCE_RULE
    notes = preview_notes(row)
    out = []
    for p in plans:
        source = "rule" if by_rule and p.source in _HINT_PLANS else p.source
        out.append(
            {"at": p.at, "source": source, "reason": REASONS.get(source, source), "notes": notes}
        )
    return out


def preview_notes(row: EndpointRow) -> list[str]:
    """What happens at each planned slot beyond its time: retries within it, and what a
    slot that comes due while a run is still going does (the overlap policy)."""
    notes: list[str] = []
    try:
        retry = describe_retry(parse_retry(row.retry))
        if retry is not None:
            notes.append(retry)
        notes.append(describe_overlap(parse_overlap(row.overlap, row.max_concurrent)))
    except RuleError:  # written around the API: the scheduler treats it as absent too
        pass
    return notes


HINT_SOURCE_RULE = "rule"  # hints written by an endpoint's response rules
_HINT_PLANS = frozenset({"ai-interval", "ai-oneshot"})


REASONS = {
    "baseline-cron": "next slot of the cron schedule",
    "baseline-interval": "next slot of the baseline interval (with backoff after failures)",
    "ai-interval": "interval hint in force",
    "ai-oneshot": "one-shot hint (run once at this time)",
    "clamped-min": "held back to the minimum interval",
    "clamped-max": "brought forward to the maximum interval",
    "paused": "paused until this time",
    "misfire": "one catch-up run for missed slots",
    "quota": "deferred to next month: the monthly run quota is used up",
    "rule": "hint written by a response rule (clamped to min/max like any hint)",
}
