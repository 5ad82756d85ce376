"""Runs, endpoint health and AI sessions: response models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, JsonValue, WithJsonSchema

from cronicorn.schemas.common import Absent, Out, UtcDatetime
from cronicorn.store.ai_sessions import SessionRow
from cronicorn.store.json_sql import JsonField
from cronicorn.store.runs import HealthSummary, RunDetail


class RunListItem(Out):
    """Written by PostgreSQL for the hot runs page (`RUN_ITEM_JSON`); a test keeps the two
    in step."""

    run_id: str
    endpoint_id: str
    status: str
    source: str
    attempt: int
    due_at: Absent[UtcDatetime] = Field(default=None, description="Absent for run-now runs")
    started_at: UtcDatetime
    finished_at: Absent[UtcDatetime] = None
    duration_ms: Absent[int] = None
    status_code: Absent[int] = None
    error_message: Absent[str] = None


RUN_ITEM_JSON = (  # `RunListItem`, in its field order, from `store.runs.RunSummary`'s columns
    JsonField("runId", "id", "text"),
    JsonField("endpointId", "endpoint_id", "text"),
    JsonField("status", "status", "text"),
    JsonField("source", "source", "text"),
    JsonField("attempt", "attempt", "int"),
    JsonField("dueAt", "due_at", "time", optional=True),
    JsonField("startedAt", "started_at", "time"),
    JsonField("finishedAt", "finished_at", "time", optional=True),
    JsonField("durationMs", "duration_ms", "int", optional=True),
    JsonField("statusCode", "status_code", "int", optional=True),
    JsonField("errorMessage", "error_message", "text", optional=True),
)


class RunList(Out):
    runs: list[RunListItem]
    total: int
    limit: int
    offset: int
    next_cursor: Absent[str] = Field(
        default=None, description="Pass as `cursor` for the next page (absent on the last)"
    )


class RunEndpoint(Out):
    id: str
    name: str
    url: str
    method: str


class RunDetails(Out):
    id: str
    endpoint_id: str
    status: str
    source: str
    attempt: int
    due_at: Absent[UtcDatetime] = None
    started_at: UtcDatetime
    finished_at: Absent[UtcDatetime] = None
    duration_ms: Absent[int] = None
    status_code: Absent[int] = None
    error_message: Absent[str] = None
    response_body: JsonValue = Field(description="The JSON response, or null")
    response_text: Absent[str] = Field(default=None, description="A response that is not JSON")
    response_size: Absent[int] = None
    response_truncated: bool
    worker: Absent[str] = None
    rules_fired: Absent[list[JsonValue]] = Field(
        default=None,
        description="Response rules that fired after this run: [{index, name?, action, "
        "target?}] (absent: none)",
        examples=[[{"index": 0, "name": "deep queue", "action": "interval"}]],
    )
    attempts: Absent[list[JsonValue]] = Field(
        default=None,
        description="Each call of a retried slot: [{attempt, statusCode?, durationMs, error?}] "
        "(absent: one call)",
        examples=[[{"attempt": 1, "statusCode": 503, "durationMs": 40, "error": "HTTP 503"}]],
    )
    endpoint: RunEndpoint

    @classmethod
    def of(cls, run: RunDetail) -> RunDetails:
        return cls(
            id=run.id,
            endpoint_id=run.endpoint_id,
            status=run.status,
            source=run.source,
            attempt=run.attempt,
            due_at=run.due_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_ms=run.duration_ms,
            status_code=run.status_code,
            error_message=run.error_message,
            response_body=run.response_body,
            response_text=run.response_text,
            response_size=run.response_size,
            response_truncated=run.response_truncated,
            worker=run.worker,
            rules_fired=run.rules_fired,
            attempts=run.attempts,
            endpoint=RunEndpoint(
                id=run.endpoint_id,
                name=run.endpoint_name,
                url=run.endpoint_url,
                method=run.endpoint_method,
            ),
        )


class LastRun(Out):
    status: str
    at: UtcDatetime


class Health(Out):
    since_hours: int
    success_count: int
    failure_count: int
    avg_duration_ms: float | None
    last_run: LastRun | None
    failure_streak: int

    @classmethod
    def of(cls, summary: HealthSummary, since_hours: int) -> Health:
        last = None
        if summary.last_status is not None and summary.last_at is not None:
            last = LastRun(status=summary.last_status, at=summary.last_at)
        return cls(
            since_hours=since_hours,
            success_count=summary.success_count,
            failure_count=summary.failure_count,
            avg_duration_ms=summary.avg_duration_ms,
            last_run=last,
            failure_streak=summary.failure_streak,
        )


TOOL_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One tool the planner called, with its arguments and result (any JSON)",
    "required": ["tool", "args", "result"],
    "properties": {"tool": {"type": "string"}, "args": {}, "result": {}},
}
WARNING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {
            "type": "string",
            "description": "output_truncated, missing_final_tool, missing_reasoning (the "
            "reference's), prose_reply, step_budget, token_budget",
        },
        "message": {"type": "string"},
        "meta": {"type": "object"},
    },
}
# Stored JSON is passed through as the planner wrote it; the schema documents its shape.
ToolCalls = Annotated[list[JsonValue], WithJsonSchema({"type": "array", "items": TOOL_CALL_SCHEMA})]
Warnings = Annotated[list[JsonValue], WithJsonSchema({"type": "array", "items": WARNING_SCHEMA})]


class Session(Out):
    id: str
    analyzed_at: UtcDatetime
    model: str | None
    tool_calls: ToolCalls
    reasoning: str = Field(description="Empty when the planner gave none")
    token_usage: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    duration_ms: int | None
    next_analysis_at: UtcDatetime | None
    warnings: Warnings
    error: str | None
    outcome: str = Field(
        description="running, applied, suggested, no_change, failed, abandoned, "
        "quota_exceeded or endpoint_gone"
    )
    confidence: str | None = Field(description="high, medium or low (submit_analysis)")

    @classmethod
    def fields_of(cls, row: SessionRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "analyzed_at": row.analyzed_at,
            "model": row.model,
            "tool_calls": row.tool_calls or [],
            "reasoning": row.reasoning or "",
            "token_usage": row.token_usage,
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "duration_ms": row.duration_ms,
            "next_analysis_at": row.next_analysis_at,
            "warnings": row.warnings or [],
            "error": row.error,
            "outcome": row.outcome,
            "confidence": row.confidence,
        }

    @classmethod
    def of(cls, row: SessionRow) -> Session:
        return cls(**cls.fields_of(row))


class SessionDetail(Session):
    endpoint_id: str
    endpoint_name: str

    @classmethod
    def of(cls, row: SessionRow) -> SessionDetail:
        return cls(
            **cls.fields_of(row), endpoint_id=row.endpoint_id, endpoint_name=row.endpoint_name
        )


class SessionList(Out):
    sessions: list[Session]
    total: int = Field(ge=0)
