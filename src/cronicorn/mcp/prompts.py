"""Prompts for the common tasks: each is a short plan in terms of the tools, so an agent takes
the same careful steps a person who knows Cronicorn would (read before writing, stay inside
min/max, prefer hints with a TTL over editing the baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mcp.types as types
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError


@dataclass(frozen=True)
class Prompt:
    name: str
    title: str
    description: str
    arguments: tuple[tuple[str, str, bool], ...]  # (name, description, required)
    template: str


PROMPTS = [
    Prompt(
        "monitor-url",
        "Monitor this URL",
        "Set up a job that calls a URL on a schedule and checks its answers.",
        (
            ("url", "The URL to call", True),
            (
                "every",
                "How often, in words (e.g. 'every 5 minutes'); default every 5 minutes",
                False,
            ),
        ),
        "Monitor {url} ({every}) with Cronicorn.\n"
        "1. listJobs to see whether a job for it exists; otherwise createJob with a name and a "
        "description of what this URL is and when it matters.\n"
        "2. addEndpoint with the url, method GET, baselineIntervalMs (milliseconds) for the "
        "schedule, and minIntervalMs/maxIntervalMs as hard limits. Add assertions (for example "
        "status 200) so a 2xx with a wrong body still counts as a failure.\n"
        "3. testEndpoint once and show the result; previewSchedule to show the next runs.\n"
        "Read the scheduling resource first if unsure about the fields.",
    ),
    Prompt(
        "why-stopped",
        "Why did this endpoint stop running?",
        "Diagnose an endpoint that no longer runs or keeps failing.",
        (("endpointId", "The endpoint's id (or describe it and I will look it up)", True),),
        "Find out why endpoint {endpointId} stopped running or keeps failing.\n"
        "1. getEndpoint (needs its jobId; listJobs and listEndpoints find it) and getJob: is "
        "the endpoint or its job archived or paused (pausedUntil)? Is there a hint in force?\n"
        "2. getEndpointHealth (sinceHours 24) and listEndpointRuns (status failed, limit 10); "
        "getRunDetails on the latest failure for the status code, error and response.\n"
        "3. previewSchedule for what runs next and why (backoff after failures, quota, pause).\n"
        "4. listAiSessions for what the AI planner decided recently.\n"
        "Report the cause and propose a fix (resumeJob, pauseResumeEndpoint with pausedUntil "
        "null, resetFailures, clearHints, a URL fix with updateEndpoint) before applying it.",
    ),
    Prompt(
        "tighten-while-queue-deep",
        "Tighten polling while a queue is deep",
        "Poll more often while a queue endpoint reports a backlog, then relax.",
        (
            ("endpointId", "The endpoint that reports the queue depth", True),
            ("threshold", "Depth above which to poll faster (default 100)", False),
        ),
        "Keep endpoint {endpointId} polling faster while its queue is deep (over {threshold}).\n"
        "1. getEndpoint and getRunDetails on its latest run: find the JSON field with the depth.\n"
        "2. Prefer a response rule (updateEndpoint with `rules`; read the responses resource): "
        "when the depth field is above the threshold, set an interval hint near minIntervalMs "
        "with a TTL; it then holds without a model and lapses by itself.\n"
        "3. For a one-off, applyIntervalHint with intervalMs within min/max and ttlMinutes, "
        "and a reason; clearHints returns to the baseline.\n"
        "Never go below minIntervalMs: the server refuses it.",
    ),
]
DEFAULTS = {"every": "every 5 minutes", "threshold": "100"}


async def list_prompts(
    _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
) -> types.ListPromptsResult:
    return types.ListPromptsResult(
        prompts=[
            types.Prompt(
                name=p.name,
                title=p.title,
                description=p.description,
                arguments=[
                    types.PromptArgument(name=n, description=d, required=r)
                    for n, d, r in p.arguments
                ],
            )
            for p in PROMPTS
        ]
    )


async def get_prompt(
    _ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
) -> types.GetPromptResult:
    prompt = next((p for p in PROMPTS if p.name == params.name), None)
    if prompt is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
    given = params.arguments or {}
    values = {}
    for name, _, required in prompt.arguments:
        value = given.get(name) or DEFAULTS.get(name)
        if value is None and required:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Missing argument: {name}")
        values[name] = value or ""
    return types.GetPromptResult(
        description=prompt.description,
        messages=[
            types.PromptMessage(
                role="user", content=types.TextContent(text=prompt.template.format(**values))
            )
        ],
    )
