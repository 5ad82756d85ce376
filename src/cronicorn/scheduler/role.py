"""The scheduler as a background role (`cronicorn scheduler`, and inside `cronicorn up`)."""

from __future__ import annotations

import asyncio
import gc

from sqlalchemy.exc import SQLAlchemyError

from cronicorn.config import Settings
from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.errors import first_line
from cronicorn.logs import get_logger
from cronicorn.runtime import Runtime
from cronicorn.scheduler.clock import utc_now
from cronicorn.scheduler.execute import dispatching
from cronicorn.scheduler.loop import Scheduler, SchedulerConfig
from cronicorn.scheduler.retention import RetentionPolicy
from cronicorn.scheduler.signing_keys import SigningKeyCache
from cronicorn.store.quotas import release_deferred

log = get_logger("cronicorn.scheduler")

GEN0_THRESHOLD = 20_000
"""The cyclic collector's first-generation threshold while a scheduler runs (Python's
default: 700 net new container objects)."""


def scheduler_config(settings: Settings) -> SchedulerConfig:
    return SchedulerConfig(
        concurrency=settings.scheduler_concurrency,
        batch_size=settings.scheduler_batch_size,
        lease_s=settings.scheduler_lease_s,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        retention=RetentionPolicy(
            days=settings.run_retention_days, per_endpoint=settings.run_retention_per_endpoint
        ),
        quotas=settings.quotas,
    )


def dispatch_config(settings: Settings) -> DispatchConfig:
    return DispatchConfig(
        allow_networks=settings.allow_networks,
        max_connections=max(settings.scheduler_concurrency, 10),
    )


def collect_less() -> None:
    """Raise the collector's first threshold to `GEN0_THRESHOLD` (never lower it).

    Each execution allocates a few dozen container objects (task, coroutines, aiohttp's
    request and response, run rows) that live for the call and are then freed by reference
    counting, with a few hundred in flight. At the default threshold of 700 the bursts of a
    claim batch set off ~60 young collections a second, which promote the in-flight objects
    and so feed older and full collections: ~11 % of the process's CPU at 1,000 executions/s
    (`gc.callbacks`, thread CPU time; bench/README.md, issue 17). At 20,000 net objects a
    collection comes when that many survive, i.e. when something (cyclic garbage) really
    accumulates: a bound of a few MB, and none at all in the steady state measured.
    Process-wide, so `cronicorn scheduler` calls it at start-up (not the role, which tests
    and `cronicorn up` run beside other work)."""
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 < GEN0_THRESHOLD:
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


async def scheduler_role(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run one scheduler until `stop`, then drain (SHUTDOWN_TIMEOUT_S)."""
    settings = runtime.settings
    await _release_deferred(runtime)
    async with Dispatcher(dispatch_config(settings)) as dispatcher:
        scheduler = Scheduler(
            scheduler_config(settings),
            runtime.database_url,
            execute=dispatching(dispatcher),
            keys=SigningKeyCache(runtime.engine, runtime.auth_secret),
        )
        runtime.health_probes["scheduler"] = scheduler.health
        try:
            await scheduler.run(stop)
        finally:
            runtime.health_probes.pop("scheduler", None)


async def _release_deferred(runtime: Runtime) -> None:
    """Endpoints deferred by a run quota since raised run again now. Best effort: with the
    database down the scheduler starts all the same (and reconnects on its own)."""
    try:
        async with runtime.engine.begin() as conn:
            released = await release_deferred(conn, runtime.settings.quotas, utc_now())
    except (SQLAlchemyError, OSError) as exc:
        log.warning("quota_release_skipped", error=first_line(exc)[:200])
        return
    if released:
        log.info("quota_deferrals_released", endpoints=released)
