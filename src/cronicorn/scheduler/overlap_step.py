"""The overlap policy in the batch write (`domain.overlap` says what it means).

`skip` and `queue_one` endpoints keep their lease for the whole run, so no slot of theirs
can start while one runs; when the run is written, the slots that came due meanwhile are
found (`overlapped`) and recorded as `skipped` runs in the same transaction, under the
endpoint's lock (each once, whoever writes), or the last one is planned to run at once
(`queue_one`). `allow` endpoints hand their run a lease of its own when it starts
(`detached`): the next slot is planned at once, as if the run had ended at its start.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from cronicorn.domain import ScheduleState
from cronicorn.domain.overlap import QUEUE_ONE, after_overlap, overlapped_slots
from cronicorn.scheduler import metrics
from cronicorn.scheduler.planning import plan_after
from cronicorn.store.run_writes import EndpointUpdate, SkippedSlot

_SKIPPED = {mode: metrics.SKIPPED_SLOTS.labels(mode) for mode in ("skip", "queue_one")}


def overlapped(
    endpoint_id: str,
    mode: str,
    state: ScheduleState,
    update: EndpointUpdate,
    *,
    due_at: datetime,
    started_at: datetime,
    until: datetime,
    succeeded: bool,
    paused: bool,
) -> tuple[EndpointUpdate, list[SkippedSlot]]:
    """The update (moved to the queued slot for `queue_one`) and the slots to record as
    skipped, for a run due at `due_at` that held its endpoint until `until`. `state` is the
    schedule as it stood during the run (before its rules applied)."""
    slots = overlapped_slots(
        state, due_at=due_at, started_at=started_at, until=until, succeeded=succeeded
    )
    if not slots:
        return update, []
    plan = after_overlap(
        mode,
        slots,
        next_at=update.next_run_at,
        next_source=update.source,
        paused=paused,
    )
    reason = f"skipped: the run due at {due_at.isoformat()} was still going (overlap {mode})"
    skipped = [SkippedSlot(endpoint_id, s.at, s.source, reason) for s in plan.skipped]
    if plan.queued is not None:
        update = dataclasses.replace(update, next_run_at=plan.queued.at, source=plan.queued.source)
    return update, skipped


def count(mode: str, skipped: int, queued: bool) -> None:
    """Count recorded and queued slots (after the batch committed)."""
    if skipped:
        _SKIPPED.get(mode, _SKIPPED["skip"]).inc(skipped)
    if queued and mode == QUEUE_ONE:
        metrics.QUEUED_SLOTS.inc()


def holding_streak(state: ScheduleState) -> tuple[ScheduleState, bool]:
    """A state and outcome for which the governor keeps the failure streak as it is (a run
    just starting changes nothing): success with none, else one failure on one fewer."""
    if state.failure_count == 0:
        return state, True
    return dataclasses.replace(state, failure_count=state.failure_count - 1), False


def detached(
    endpoint_id: str,
    lease: str,
    state: ScheduleState,
    *,
    due_at: datetime,
    started_at: datetime,
    now: datetime,
) -> EndpointUpdate:
    """The next slot of an `allow` endpoint whose run just started, planned as if the run
    had ended at its start; the endpoint's `running` goes up by one."""
    held, succeeded = holding_streak(state)
    planned = plan_after(
        endpoint_id,
        lease,
        held,
        due_at=due_at,
        started_at=started_at,
        finished_at=started_at,
        succeeded=succeeded,
        now=now,
    )
    return dataclasses.replace(planned.update, running_delta=1)
