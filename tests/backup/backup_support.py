"""Helpers for the backup tests: seed rows with plain SQL, count them, read manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

SEED_USER = "u-seed"


def seed(url: str, *, jobs: int = 3, endpoints: int = 6, runs: int = 60, tag: str = "") -> None:
    """Jobs, endpoints and runs for one user, with generate_series (fast at any size)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (id, email) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (SEED_USER, "seed@example.com"),
        )
        conn.execute(
            "INSERT INTO jobs (id, user_id, name) SELECT %(t)s || 'job-' || g, %(u)s, "
            "'job ' || g FROM generate_series(1, %(n)s) g",
            {"t": tag, "u": SEED_USER, "n": jobs},
        )
        conn.execute(
            "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, "
            "next_run_at) SELECT %(t)s || 'ep-' || g, %(t)s || 'job-' || ((g - 1) %% %(j)s + 1), "
            "%(u)s, 'ep ' || g, 'https://example.com/' || g, 60000, now() "
            "FROM generate_series(1, %(n)s) g",
            {"t": tag, "u": SEED_USER, "n": endpoints, "j": jobs},
        )
        conn.execute(
            "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at, due_at, "
            "finished_at, duration_ms, status_code, response_text) "
            "SELECT %(t)s || 'run-' || g, %(t)s || 'ep-' || ((g - 1) %% %(e)s + 1), %(u)s, "
            "'success', 'baseline-interval', now() - g * interval '1 second', "
            "now() - g * interval '1 second', now() - g * interval '1 second' + interval "
            "'100 ms', 100, 200, repeat('x', 40) FROM generate_series(1, %(n)s) g",
            {"t": tag, "u": SEED_USER, "n": runs, "e": endpoints},
        )


def counts(url: str, *tables: str) -> dict[str, int]:
    names = tables or ("users", "jobs", "endpoints", "runs")
    with psycopg.connect(url) as conn:
        return {
            t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])  # type: ignore[index]
            for t in names
        }


def scalar(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None


def manifest_json(backup: Path) -> dict[str, Any]:
    return dict(json.loads((backup / "manifest.json").read_text()))
