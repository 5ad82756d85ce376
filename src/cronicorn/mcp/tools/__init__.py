"""Every tool, in the order agents see them: jobs, endpoints, adaptive scheduling, runs,
dashboard and signing keys, the AI planner, export and import,
notification channels and subscriptions (admins: backup failure alerts too)."""

from __future__ import annotations

from typing import Any

from cronicorn.mcp.tooling import Tool
from cronicorn.mcp.tools import (
    account,
    account_notify,
    adaptive,
    ai,
    channels,
    endpoints,
    jobs,
    runs,
    transfer,
)

ALL_TOOLS: list[Tool[Any]] = [
    *jobs.TOOLS,
    *endpoints.TOOLS,
    *adaptive.TOOLS,
    *runs.TOOLS,
    *account.TOOLS,
    *ai.TOOLS,
    *transfer.TOOLS,
    *channels.TOOLS,
    *account_notify.TOOLS,
]
