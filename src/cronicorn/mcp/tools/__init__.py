"""Every tool, in the order agents see them: jobs, endpoints, adaptive scheduling, runs,
dashboard and signing keys, the AI planner."""

from __future__ import annotations

from typing import Any

from cronicorn.mcp.tooling import Tool
from cronicorn.mcp.tools import account, adaptive, ai, endpoints, jobs, runs

ALL_TOOLS: list[Tool[Any]] = [
    *jobs.TOOLS,
    *endpoints.TOOLS,
    *adaptive.TOOLS,
    *runs.TOOLS,
    *account.TOOLS,
    *ai.TOOLS,
]
