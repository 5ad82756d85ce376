"""Prometheus metrics of the scheduler (default registry, served by the API's `/metrics` or
by a lone scheduler's `--metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EXECUTIONS = Counter(
    "cronicorn_scheduler_executions_total",
    "Scheduled HTTP executions, by outcome.",
    ["outcome"],
)
SUCCEEDED = EXECUTIONS.labels("success")  # bound once: the hot path skips the label lookup
FAILED = EXECUTIONS.labels("failed")
LATENESS = Histogram(
    "cronicorn_scheduler_lateness_seconds",
    "Actual start of a run minus its due time.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CLAIM_BATCH = Histogram(
    "cronicorn_scheduler_claim_batch_size",
    "Endpoints claimed per claim statement.",
    buckets=(0, 1, 2, 5, 10, 25, 50, 100, 200, 500, 1000),
)
IN_FLIGHT = Gauge(
    "cronicorn_scheduler_in_flight_runs",
    "Claimed runs not yet written back (waiting for their due time or executing).",
)
WORKER_LOST = Counter(
    "cronicorn_scheduler_worker_lost_total",
    "Runs closed as 'worker lost' after their worker's lease expired.",
)
WRITE_BATCH = Histogram(
    "cronicorn_scheduler_write_batch_size",
    "Finished runs written per statement batch.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000),
)
DB_ERRORS = Counter(
    "cronicorn_scheduler_database_errors_total",
    "Database errors the scheduler recovered from (reconnect and retry), by operation.",
    ["operation"],
)
SKIPPED_SLOTS = Counter(
    "cronicorn_scheduler_skipped_slots_total",
    "Slots not run because a run of the endpoint was still going, recorded as skipped runs "
    "(overlap skip, or queue_one beyond the one queued).",
    ["overlap"],
)
QUEUED_SLOTS = Counter(
    "cronicorn_scheduler_queued_slots_total",
    "Slots run right after the run that overlapped them (overlap queue_one).",
)
RETENTION_DELETED = Counter(
    "cronicorn_scheduler_runs_deleted_total",
    "Run rows deleted by retention, by rule.",
    ["rule"],
)


class MetricsServerError(Exception):
    """The metrics listener could not start; the message names the port and the fix."""


def serve_metrics(host: str, port: int) -> None:
    """Serve `/metrics` for a lone scheduler from a daemon thread (prometheus-client)."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise MetricsServerError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
            "choose another --metrics-port / SCHEDULER_METRICS_PORT"
        ) from None
