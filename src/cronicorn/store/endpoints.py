"""Endpoints: create, edit, archive, delete, hints, pause, failure reset. Scoped by user.

Every write is one transaction step: the row is locked (`SELECT … FOR UPDATE`), the new values
are checked as a whole (exactly one baseline, min ≤ max, valid cron and time zone), the next
run is planned by the domain governor when anything that steers scheduling changed, and one
UPDATE writes everything and bumps `version`. Concurrent edits therefore serialise: the last
one wins and nothing is ever half-written. When `next_run_at` moves earlier the schedulers
are woken (NOTIFY, delivered on commit).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, Text, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain import NO_QUOTAS, Quotas, ScheduleState, plan_initial, plan_on_change
from cronicorn.domain import endpoint_config as config_rules

# Re-exported for import/export (`services/transfer.py`), which compares whole configs.
from cronicorn.domain.endpoint_config import CONFIG_FIELDS as CONFIG_FIELDS
from cronicorn.domain.endpoint_config import DEFAULTS as DEFAULTS
from cronicorn.domain.errors import ConfigError
from cronicorn.domain.ids import new_id
from cronicorn.domain.next_runs import next_runs, slot_notes
from cronicorn.domain.rules_preview import Bounds, rule_notes, rule_targets
from cronicorn.store import jobs as job_store
from cronicorn.store.errors import Conflict, Invalid, NotFound
from cronicorn.store.json_sql import JsonField, joined, json_parts
from cronicorn.store.quotas import check_endpoint_room, open_meter
from cronicorn.store.read_pool import ReadPool, ReadStatement, compiled
from cronicorn.store.tables import endpoints, jobs
from cronicorn.store.wakeups import wake_schedulers


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


@contextmanager
def invalid_config() -> Iterator[None]:
    """A whole-row rule's `ConfigError` (domain) as the store's `Invalid`."""
    try:
        yield
    except ConfigError as exc:
        raise Invalid(exc.field, exc.message) from None


def apply_interval_quota(values: dict[str, Any], quotas: Quotas) -> dict[str, Any]:
    """`endpoint_config.apply_interval_quota`, a refusal raised as `Invalid`."""
    with invalid_config():
        return config_rules.apply_interval_quota(values, quotas)


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


# A job's endpoints for the API's hot route, on the driver (`store.read_pool`): the job's
# ownership and its endpoints in one statement (no row at all: not the caller's job; one
# row of NULL endpoint columns: a job without endpoints), each endpoint's JSON written by
# PostgreSQL (`store.json_sql`, from the columns of `EndpointRow` and `hint_expires_at`).
_USER = bindparam("user_id", type_=Text)
_COLUMNS = {
    **{name: endpoints.c[name] for name in _NAMES},
    "hint_expires_at": func.greatest(  # the later of the two hints' expiries (NULLs ignored)
        endpoints.c.hint_interval_expires_at, endpoints.c.hint_oneshot_expires_at
    ),
}


@functools.cache
def _listed_for_job(fields: tuple[JsonField, ...]) -> ReadStatement:
    return compiled(
        select(jobs.c.id, endpoints.c.id, *json_parts(fields, _COLUMNS.__getitem__))
        .select_from(
            jobs.outerjoin(
                endpoints,
                and_(endpoints.c.job_id == jobs.c.id, endpoints.c.user_id == _USER),
            )
        )
        .where(jobs.c.id == bindparam("job_id", type_=Text), jobs.c.user_id == _USER)
        .order_by(endpoints.c.created_at, endpoints.c.id)
    )


async def list_for_job_json(
    pool: ReadPool, user_id: str, job_id: str, fields: tuple[JsonField, ...]
) -> list[str]:
    """`list_for_job` as one JSON object per endpoint (the API's
    `GET /api/jobs/{jobId}/endpoints`)."""
    rows = await pool.fetch(_listed_for_job(fields), {"user_id": user_id, "job_id": job_id})
    if not rows:
        raise NotFound("Job")
    return [joined(row[2:], fields) for row in rows if row[1] is not None]


# -- validation that reads rows -----------------------------------------------------------
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
    values = apply_interval_quota(config_rules.with_defaults(config), quotas)
    with invalid_config():
        config_rules.check_config(values)
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
    values = config_rules.merge_changes(current, changes)
    if config_rules.moves_schedule(config_rules.changed(current, values)):
        values = apply_interval_quota(values, quotas)
    with invalid_config():
        config_rules.check_config(values)
    if "rules" in changes:
        await check_rule_targets(conn, user_id, before.job_id, values.get("rules"))
    diff = config_rules.changed(current, values)
    replan = config_rules.moves_schedule(diff)
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
    """The next `count` planned runs (instant, source, why, notes) if nothing changes and
    every run succeeds (`domain.next_runs`); none for an archived endpoint."""
    row = await get(conn, user_id, endpoint_id)
    if row.archived_at is not None:
        return []
    notes = slot_notes(row.retry, row.overlap, row.max_concurrent)
    own = Bounds(None, row.min_interval_ms, row.max_interval_ms)
    siblings = await rule_bounds(conn, user_id, rule_targets(row.rules))
    rules = rule_notes(row.rules, own, siblings, endpoint_id=row.id)
    plans = next_runs(
        schedule_state(row),
        now,
        count,
        next_source=row.next_run_source,
        hint_source=row.hint_source,
        notes=notes,
        rules=rules,
    )
    return [{**asdict(p), "notes": list(p.notes), "rules": list(p.rules) or None} for p in plans]


async def rule_bounds(conn: AsyncConnection, user_id: str, ids: set[str]) -> dict[str, Bounds]:
    """Names and clamps of the user's endpoints that rules act on (for previews)."""
    if not ids:
        return {}
    query = select(
        endpoints.c.id, endpoints.c.name, endpoints.c.min_interval_ms, endpoints.c.max_interval_ms
    ).where(endpoints.c.id.in_(sorted(ids)), endpoints.c.user_id == user_id)
    return {
        r.id: Bounds(r.name, r.min_interval_ms, r.max_interval_ms)
        for r in await conn.execute(query)
    }
