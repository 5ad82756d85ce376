"""Every tool, in the order agents see them: jobs, endpoints, adaptive scheduling, runs,
dashboard, signing keys, AI planner, import/export."""

from __future__ import annotations

from typing import Any

from cronicorn.mcp.tooling import Tool
from cronicorn.mcp.tools import jobs

ALL_TOOLS: list[Tool[Any]] = [*jobs.TOOLS]
