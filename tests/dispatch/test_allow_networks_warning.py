"""An allowance that can never take effect is said at start, not accepted silently."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from cronicorn.config import load_settings
from cronicorn.serve import make_runtime


def test_start_warns_about_an_always_refused_allowance(database_url: str) -> None:
    settings = load_settings(
        DATABASE_URL=database_url,
        AUTH_SECRET="s" * 40,
        CRONICORN_ALLOW_NETWORKS="127.0.0.0/8,169.254.169.254/32",
    )
    with capture_logs() as logs:
        runtime = make_runtime(settings, database_url, role="api")
    asyncio.run(runtime.close())
    warnings = [entry for entry in logs if entry["event"] == "allow_networks_ineffective"]
    assert [w["problem"] for w in warnings] == [
        "169.254.169.254/32 is link-local (cloud metadata): always refused, "
        "the allowance has no effect"
    ]
    assert all(w["log_level"] == "warning" for w in warnings)
