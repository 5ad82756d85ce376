"""The 8 tools as the model sees them (JSON schema) and as we check them (pydantic).

Names and argument names are the reference's, so prompts, stored sessions and evaluations
carry over. Added: an optional `endpointId` on the action tools (a sibling in the same job;
the reference could only act on the analysed endpoint). Out-of-range numbers are clamped
(and the result says so), not rejected; malformed values and unknown fields are rejected
with a message the model can act on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

FINAL_TOOL = "submit_analysis"
ACTION_TOOLS = frozenset({"propose_interval", "propose_next_time", "pause_until", "clear_hints"})
Reason = Annotated[str, Field(max_length=1000)]
EndpointId = Annotated[str, Field(min_length=1, max_length=64)]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(Args):
    pass


class HistoryArgs(Args):
    limit: int = 5
    offset: int = 0
    includeBodies: StrictBool = False


class SiblingArgs(Args):
    includeResponses: StrictBool = False


class IntervalArgs(Args):
    intervalMs: float = Field(gt=0, allow_inf_nan=False)
    ttlMinutes: float = Field(default=60, gt=0, allow_inf_nan=False)
    reason: Reason | None = None
    endpointId: EndpointId | None = None


class NextTimeArgs(Args):
    nextRunAtIso: str = Field(min_length=1, max_length=64)
    ttlMinutes: float = Field(default=30, gt=0, allow_inf_nan=False)
    reason: Reason | None = None
    endpointId: EndpointId | None = None


class PauseArgs(Args):
    untilIso: str | None = Field(max_length=64)
    reason: Reason | None = None
    endpointId: EndpointId | None = None


class ClearArgs(Args):
    reason: Reason = Field(min_length=1)
    endpointId: EndpointId | None = None


class SubmitArgs(Args):
    reasoning: str = Field(min_length=1, max_length=4000)
    actions_taken: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=20
    )
    confidence: Literal["high", "medium", "low"] | None = None
    next_analysis_in_ms: float | None = Field(default=None, allow_inf_nan=False)


ARGS: dict[str, type[Args]] = {
    "get_latest_response": NoArgs,
    "get_response_history": HistoryArgs,
    "get_sibling_latest_responses": SiblingArgs,
    "propose_interval": IntervalArgs,
    "propose_next_time": NextTimeArgs,
    "pause_until": PauseArgs,
    "clear_hints": ClearArgs,
    "submit_analysis": SubmitArgs,
}

_TARGET = {
    "type": "string",
    "description": "Optional: a sibling endpoint's id (same job) to act on instead of the "
    "analysed endpoint. Omit to act on the analysed endpoint.",
}
_REASON = {"type": "string", "description": "Short reason, shown to the user"}


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Any:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


TOOLS: list[dict[str, Any]] = [
    _tool(
        "get_latest_response",
        "The endpoint's newest finished run: status, HTTP status code, error, latency and "
        "response body (budgeted). Call this first.",
        {},
        [],
    ),
    _tool(
        "get_response_history",
        "Earlier finished runs, newest first, paged. Bodies only with includeBodies=true.",
        {
            "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            "offset": {"type": "integer", "minimum": 0, "default": 0},
            "includeBodies": {"type": "boolean", "default": False},
        },
        [],
    ),
    _tool(
        "get_sibling_latest_responses",
        "The newest run, schedule, pause state and hints of each other endpoint in this job.",
        {"includeResponses": {"type": "boolean", "default": False}},
        [],
    ),
    _tool(
        "propose_interval",
        "Run at this interval for ttlMinutes (overrides the baseline while active; kept "
        "within the endpoint's min/max).",
        {
            "intervalMs": {"type": "integer", "minimum": 1000},
            "ttlMinutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60},
            "reason": _REASON,
            "endpointId": _TARGET,
        },
        ["intervalMs"],
    ),
    _tool(
        "propose_next_time",
        "Run once at nextRunAtIso (ISO 8601 UTC, in the future); competes with the baseline.",
        {
            "nextRunAtIso": {"type": "string", "format": "date-time"},
            "ttlMinutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 30},
            "reason": _REASON,
            "endpointId": _TARGET,
        },
        ["nextRunAtIso"],
    ),
    _tool(
        "pause_until",
        "Pause until untilIso (ISO 8601 UTC, at most 24 h ahead), or resume with null.",
        {
            "untilIso": {"type": ["string", "null"], "format": "date-time"},
            "reason": _REASON,
            "endpointId": _TARGET,
        },
        ["untilIso"],
    ),
    _tool(
        "clear_hints",
        "Drop interval and one-shot hints: back to the baseline schedule now.",
        {"reason": _REASON, "endpointId": _TARGET},
        ["reason"],
    ),
    _tool(
        FINAL_TOOL,
        "Finish the session: what you observed and did, your confidence, and when to look "
        "again (300000 to 86400000 ms).",
        {
            "reasoning": {"type": "string"},
            "actions_taken": {"type": "array", "items": {"type": "string"}},
            "confidence": {"type": "string", "enum": ["high", "medium", "low"]},
            "next_analysis_in_ms": {"type": "integer", "minimum": 300000, "maximum": 86400000},
        },
        ["reasoning"],
    ),
]
