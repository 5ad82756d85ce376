"""The scheduler's per-execution Python work for rules and assertions, in isolation.

    .venv/bin/python bench/rules_path.py [--executions 20000] [--rounds 5]

`bench/scheduler.py --rules all` measures the whole scheduler process, which a shared, busy
machine makes noisy (±10-20 % between measurements of one mode). This runs, in one process
and without the network or the database, the steps each execution takes after its HTTP
answer: the assertion verdict (`dispatch.judge`), the rules (`scheduler.rules_step`), the
governor's plan, the writer's rule bookkeeping (`scheduler.writer`, private helpers) and the
two JSON rows of the batch write (`store.run_writes`), 100 executions per batch, for the
benchmark's three variants (none; three rules and an assertion, none firing; the same with
one rule firing on every run, its hint already in force). It prints the best of `--rounds`
CPU times per execution (`time.process_time`), with the cyclic garbage collector off (the
code's own cost) and on (after freezing the start-up heap, as `cronicorn scheduler` does:
what the allocations add).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cronicorn.dispatch.calls import outcome_of
from cronicorn.dispatch.judge import judge
from cronicorn.dispatch.models import HttpResult
from cronicorn.domain import ScheduleState
from cronicorn.scheduler import writer
from cronicorn.scheduler.outcome import run_of
from cronicorn.scheduler.planning import plan_after
from cronicorn.scheduler.rules_step import after_run
from cronicorn.store.run_writes import EndpointUpdate, Leased, _endpoint_row, run_row

PAYLOAD = b'{"ok":true,"status":"ok","queue":{"depth":7,"name":"main"},"items":[{"ok":true}]}'
ASSERTIONS = json.dumps(
    {"statuses": ["2xx"], "conditions": [{"jsonPath": "$.ok", "op": "==", "value": True}]}
)
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def rules(fires: bool) -> str:
    """bench/scheduler.py's three rules; the third holds on every run when `fires`."""
    return json.dumps(
        [
            {
                "name": "deep queue",
                "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 100},
                "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 10},
            },
            {
                "name": "degraded",
                "when": {
                    "any": [
                        {"status": ["5xx"]},
                        {"jsonPath": "$.status", "op": "==", "value": "degraded"},
                    ]
                },
                "then": {"action": "pause", "forMinutes": 5},
            },
            {
                "name": "steady",
                "when": {"jsonPath": "$.items[0].ok", "op": "==", "value": fires},
                "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 60},
            },
        ]
    )


def variants() -> dict[str, Leased]:
    grid = {"baseline_interval_ms": 1000, "last_due_at": NOW - timedelta(seconds=1)}
    plain = ScheduleState(**grid, next_run_at=NOW)  # type: ignore[arg-type]
    hinted = ScheduleState(
        **grid,  # type: ignore[arg-type]
        next_run_at=NOW,
        hint_interval_ms=1000,
        hint_interval_expires_at=NOW + timedelta(minutes=59),
    )
    return {
        "none": Leased(plain, "baseline-interval"),
        "quiet": Leased(plain, "baseline-interval", rules(False)),
        "worst": Leased(hinted, "rule", rules(True), "rule", "skip", "L", "rule: steady"),
    }


def execution(row: Leased, assertions: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One execution's work from its HTTP answer to its two rows of the batch write."""
    answer = HttpResult(
        status="success",
        duration_ms=3,
        status_code=200,
        response_json=json.loads(PAYLOAD),
        response_size=len(PAYLOAD),
    )
    outcome = run_of(outcome_of(judge(answer, assertions)), "r", NOW, NOW)
    applied = after_run(row.rules, outcome, row.state, NOW, "e")
    state = row.state if applied is None else applied.state
    update: EndpointUpdate = plan_after(
        "e", "L", state, due_at=NOW, started_at=NOW, finished_at=NOW, succeeded=True, now=NOW
    ).update
    if applied is not None:
        update, changed = writer._with_rules(update, outcome, applied, row, NOW)
        assert changed is not None
        outcome = changed
    update = writer._labelled(update, row, applied)
    return run_row(outcome), _endpoint_row(update)


def per_execution(work: Callable[[], tuple[dict[str, Any], dict[str, Any]]], n: int) -> float:
    batch: list[tuple[dict[str, Any], dict[str, Any]]] = []
    started = time.process_time()
    for _ in range(n):
        batch.append(work())
        if len(batch) == 100:
            json.dumps([r for r, _ in batch])
            json.dumps([e for _, e in batch])
            batch = []
    return (time.process_time() - started) / n * 1e6


def _bound(row: Leased, assertions: str | None) -> Callable[[], tuple[Any, Any]]:
    return lambda: execution(row, assertions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    rows = variants()
    best: dict[tuple[str, bool], float] = {}
    for _ in range(args.rounds):  # interleaved, so a busy moment hits every variant
        for collector in (False, True):
            for name, row in rows.items():
                assertions = None if name == "none" else ASSERTIONS
                (gc.enable if collector else gc.disable)()
                us = per_execution(_bound(row, assertions), args.executions)
                key = (name, collector)
                best[key] = min(best.get(key, us), us)
    gc.enable()
    print("CPU per execution, best of", args.rounds, "(µs): variant | GC off | GC on")
    for name in rows:
        off, on = best[name, False], best[name, True]
        base_off, base_on = best["none", False], best["none", True]
        print(f"{name:6s} | {off:6.1f} ({off - base_off:+5.1f}) | {on:6.1f} ({on - base_on:+5.1f})")


if __name__ == "__main__":
    main()
