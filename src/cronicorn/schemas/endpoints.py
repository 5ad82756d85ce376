"""Endpoints and the routes that steer them (hints, pause, preview, run now).

Column names differ from the reference's JSON names; this module is the one place that maps
them (`hint_oneshot_at` → `aiHintNextRunAt`, …).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cronicorn.domain.errors import RuleError
from cronicorn.domain.retry import parse_retry, retry_to_json
from cronicorn.domain.rules import (
    assertions_to_json,
    parse_assertions,
    parse_rules,
    rules_to_json,
)
from cronicorn.schemas.common import (
    MAX_INTERVAL_MS,
    MAX_TTL_MINUTES,
    Absent,
    In,
    InDatetime,
    NonBlank,
    Out,
    Text,
    UtcDatetime,
    json_without_nul,
)
from cronicorn.store.endpoints import EndpointRow
from cronicorn.store.json_sql import JsonField, Kind

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
AiMode = Literal["inherit", "off", "suggest", "auto"]
Overlap = Literal["skip", "queue_one", "allow"]
_OVERLAP = (
    "What a slot that comes due while a run of the endpoint is still going does: skip (it does "
    "not run and is recorded as a skipped run), queue_one (the last such slot runs right after "
    "the run ends) or allow (runs side by side, at most maxConcurrent at once)"
)
MaxConcurrent = Annotated[
    int,
    Field(
        ge=1,
        le=100,
        description="With overlap allow: runs in flight at once (default 5)",
        examples=[3],
    ),
]
MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 50
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


def _control(ch: str) -> bool:
    return (ord(ch) < 32 and ch != "\t") or ord(ch) == 127


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    json_without_nul(value)
    for name, header in value.items():
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"invalid header name {name[:40]!r}")
        if len(header) > 8192 or any(
            (ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in header
        ):
            raise ValueError(f"invalid value for header {name!r}")
    return value


def _check_body(value: Any) -> Any:
    json_without_nul(value)
    if len(json.dumps(value, separators=(",", ":"))) > MAX_BODY_BYTES:
        raise ValueError(f"must serialise to at most {MAX_BODY_BYTES} bytes")
    return value


def _check_assertions(value: Any) -> Any:
    json_without_nul(value)
    try:
        return assertions_to_json(parse_assertions(value))
    except RuleError as exc:
        raise ValueError(str(exc)) from None


def _check_rules(value: Any) -> Any:
    json_without_nul(value)
    try:
        return rules_to_json(parse_rules(value))
    except RuleError as exc:
        raise ValueError(str(exc)) from None


_CONDITION_DOC = (
    'A condition: {status: [200, "2xx", "500-504"]}, {latencyMs: {above, below}}, '
    '{jsonPath: "$.a.b", op: ==|!=|>|>=|<|<=|exists|not exists, value}, '
    '{regex: "RE2 pattern"} (on the first 64 KiB of the text body), {all: [...]}, '
    "{any: [...]} or {not: {...}}. JSON conditions are false on a body that is not JSON."
)
ASSERTIONS_EXAMPLE = {
    "statuses": ["2xx"],
    "conditions": [{"jsonPath": "$.status", "op": "==", "value": "ok"}],
}
RULES_EXAMPLE = [
    {
        "name": "deep queue",
        "when": {"jsonPath": "$.queue.depth", "op": ">", "value": 100},
        "then": {"action": "interval", "intervalMs": 1000, "ttlMinutes": 10},
    },
    {"when": {"status": [503]}, "then": {"action": "pause", "forMinutes": 5}},
]
_ASSERTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'What a run must return to count as a success (default: statuses ["2xx"], '
    "no conditions); a failed assertion is a failed run, counted for backoff. " + _CONDITION_DOC,
    "properties": {
        "statuses": {"type": "array", "items": {"type": ["integer", "string"]}},
        "conditions": {"type": "array", "items": {"type": "object"}, "maxItems": 20},
    },
    "additionalProperties": False,
    "examples": [ASSERTIONS_EXAMPLE],
}
_RULES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 20,
    "description": "Ordered response rules, tried right after each run: for each endpoint "
    "acted on (this one, or `then.target`, a sibling in the same job) the first rule whose "
    "`when` holds fires. Actions: interval {intervalMs}, oneshot {atIso | inMs}, pause "
    "{untilIso | forMinutes}, resume, clear; `ttlMinutes` (default 60) bounds hints. "
    "Hints are clamped to min/maxIntervalMs. " + _CONDITION_DOC,
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 100},
            "when": {"type": "object"},
            "then": {
                "type": "object",
                "properties": {
                    "action": {"enum": ["interval", "oneshot", "pause", "resume", "clear"]},
                    "intervalMs": {"type": "integer"},
                    "atIso": {"type": "string", "format": "date-time"},
                    "inMs": {"type": "integer"},
                    "untilIso": {"type": "string", "format": "date-time"},
                    "forMinutes": {"type": "integer"},
                    "ttlMinutes": {"type": "integer"},
                    "target": {"type": "string"},
                },
                "required": ["action"],
            },
        },
        "required": ["when", "then"],
    },
    "examples": [RULES_EXAMPLE],
}
AssertionsIn = Annotated[
    JsonValue, AfterValidator(_check_assertions), WithJsonSchema(_ASSERTIONS_SCHEMA)
]
RulesIn = Annotated[JsonValue, AfterValidator(_check_rules), WithJsonSchema(_RULES_SCHEMA)]


def _check_retry(value: Any) -> Any:
    try:
        return retry_to_json(parse_retry(value))
    except RuleError as exc:
        raise ValueError(str(exc)) from None


RETRY_EXAMPLE = {
    "attempts": 3,
    "backoff": "exponential",
    "initialDelayMs": 500,
    "maxDelayMs": 10000,
    "on": ["5xx", "timeout", "connection"],
}
_RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Retries within one run (absent: none). `attempts` counts every call of the "
    "slot, the first included (1 to 10); the delay before the next call is initialDelayMs "
    "(fixed) or doubles from it (exponential), at most maxDelayMs (300000). `on`: status codes,"
    ' classes or ranges, "timeout" and "connection" (default ["5xx", "timeout", '
    '"connection"]). Each call is recorded on the run (`attempts`); the slot\'s lease is held '
    "throughout, so the next slot never starts before the retries end.",
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "backoff": {"enum": ["fixed", "exponential"]},
        "initialDelayMs": {"type": "integer", "minimum": 0, "maximum": 300000},
        "maxDelayMs": {"type": "integer", "minimum": 0, "maximum": 300000},
        "on": {"type": "array", "items": {"type": ["integer", "string"]}, "minItems": 1},
    },
    "additionalProperties": False,
    "examples": [RETRY_EXAMPLE],
}
RetryIn = Annotated[JsonValue, AfterValidator(_check_retry), WithJsonSchema(_RETRY_SCHEMA)]


Name = Annotated[NonBlank, Field(min_length=1, max_length=255)]
Url = Annotated[Text, Field(min_length=1, max_length=2048), AfterValidator(_check_url)]
Headers = Annotated[dict[str, str], AfterValidator(_check_headers)]
Body = Annotated[JsonValue, AfterValidator(_check_body)]
Description = Annotated[Text, Field(max_length=2000)]
Cron = Annotated[Text, Field(min_length=1, max_length=255)]
Timezone = Annotated[Text, Field(min_length=1, max_length=64)]
IntervalMs = Annotated[int, Field(ge=1000, le=MAX_INTERVAL_MS)]
TimeoutMs = Annotated[int, Field(ge=1, le=1_800_000)]
SizeKb = Annotated[int, Field(ge=1, le=10 * 1024)]


class EndpointCreate(In):
    """A new endpoint: exactly one of `baselineCron` / `baselineIntervalMs`."""

    name: Name
    url: Url
    description: Description | None = None
    method: Method = "GET"
    headers_json: Headers | None = None
    body_json: Body | None = None
    timeout_ms: TimeoutMs | None = None
    max_execution_time_ms: TimeoutMs | None = None
    max_response_size_kb: SizeKb | None = None
    baseline_cron: Cron | None = None
    baseline_interval_ms: IntervalMs | None = None
    timezone: Timezone = "UTC"
    min_interval_ms: IntervalMs | None = None
    max_interval_ms: IntervalMs | None = None
    ai_mode: AiMode = Field(
        default="inherit",
        description="AI planner: inherit (the job's aiMode), off, suggest (record suggestions "
        "to apply or dismiss) or auto (write hints)",
    )
    assertions: AssertionsIn | None = None
    rules: RulesIn | None = None
    retry: RetryIn | None = None
    overlap: Overlap = Field(default="skip", description=_OVERLAP, examples=["queue_one"])
    max_concurrent: MaxConcurrent | None = None


_NOT_NULL = ("name", "url")


class EndpointPatch(In):
    """Only the fields sent change. `null` clears a field (`method` → GET, `timezone` → UTC);
    setting one baseline kind clears the other."""

    name: Annotated[
        Name | None, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255})
    ] = None
    url: Annotated[
        Url | None,
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 2048, "format": "uri"}),
    ] = None
    description: Description | None = None
    method: Method | None = None
    headers_json: Headers | None = None
    body_json: Body | None = None
    timeout_ms: TimeoutMs | None = None
    max_execution_time_ms: TimeoutMs | None = None
    max_response_size_kb: SizeKb | None = None
    baseline_cron: Cron | None = None
    baseline_interval_ms: IntervalMs | None = None
    timezone: Timezone | None = None
    min_interval_ms: IntervalMs | None = None
    max_interval_ms: IntervalMs | None = None
    ai_mode: AiMode | None = None  # null: inherit
    assertions: AssertionsIn | None = None  # null: 2xx only
    rules: RulesIn | None = None  # null: no rules
    retry: RetryIn | None = None  # null: no retries
    overlap: Overlap | None = Field(default=None, description=_OVERLAP + "; null: skip")
    max_concurrent: MaxConcurrent | None = None  # null: the default cap

    @field_validator(*_NOT_NULL)
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class Endpoint(Out):
    """Unset optional fields are left out (`Absent`), as the reference does."""

    id: str
    job_id: str
    name: str
    description: Absent[str] = None
    url: str
    method: str
    headers_json: Absent[dict[str, str]] = None
    body_json: JsonValue = Field(description="null when the endpoint sends no body")
    timeout_ms: Absent[int] = None
    max_execution_time_ms: Absent[int] = None
    max_response_size_kb: Absent[int] = None
    baseline_cron: Absent[str] = None
    baseline_interval_ms: Absent[int] = None
    timezone: str
    min_interval_ms: Absent[int] = None
    max_interval_ms: Absent[int] = None
    next_run_at: UtcDatetime
    next_run_source: str
    last_run_at: Absent[UtcDatetime] = None
    failure_count: int
    paused_until: Absent[UtcDatetime] = None
    archived_at: Absent[UtcDatetime] = None
    ai_hint_interval_ms: Absent[int] = None
    ai_hint_interval_expires_at: Absent[UtcDatetime] = None
    ai_hint_next_run_at: Absent[UtcDatetime] = None
    ai_hint_next_run_expires_at: Absent[UtcDatetime] = None
    ai_hint_expires_at: Absent[UtcDatetime] = Field(
        default=None,
        description="The later of the two hint expiries (for clients of the reference API)",
    )
    ai_hint_reason: Absent[str] = None
    ai_hint_source: Absent[str] = None
    ai_mode: str = Field(description="inherit | off | suggest | auto")
    assertions: Absent[JsonValue] = Field(
        default=None, description="Success assertions (absent: 2xx only)"
    )
    rules: Absent[JsonValue] = Field(default=None, description="Ordered response rules")
    retry: Absent[JsonValue] = Field(default=None, description="Retries within a run")
    overlap: str = Field(default="skip", description=_OVERLAP)
    max_concurrent: Absent[int] = Field(
        default=None, description="With overlap allow: runs at once (absent: 5)"
    )
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, row: EndpointRow) -> Endpoint:
        expiries = [
            e for e in (row.hint_interval_expires_at, row.hint_oneshot_expires_at) if e is not None
        ]
        return cls(
            id=row.id,
            job_id=row.job_id,
            name=row.name,
            description=row.description,
            url=row.url,
            method=row.method,
            headers_json=row.headers_json,
            body_json=row.body_json,
            timeout_ms=row.timeout_ms,
            max_execution_time_ms=row.max_execution_time_ms,
            max_response_size_kb=row.max_response_size_kb,
            baseline_cron=row.baseline_cron,
            baseline_interval_ms=row.baseline_interval_ms,
            timezone=row.timezone,
            min_interval_ms=row.min_interval_ms,
            max_interval_ms=row.max_interval_ms,
            next_run_at=row.next_run_at,
            next_run_source=row.next_run_source,
            last_run_at=row.last_run_at,
            failure_count=row.failure_count,
            paused_until=row.paused_until,
            archived_at=row.archived_at,
            ai_hint_interval_ms=row.hint_interval_ms,
            ai_hint_interval_expires_at=row.hint_interval_expires_at,
            ai_hint_next_run_at=row.hint_oneshot_at,
            ai_hint_next_run_expires_at=row.hint_oneshot_expires_at,
            ai_hint_expires_at=max(expiries) if expiries else None,
            ai_hint_reason=row.hint_reason,
            ai_hint_source=row.hint_source,
            ai_mode=row.ai_mode,
            assertions=row.assertions,
            rules=row.rules,
            retry=row.retry,
            overlap=row.overlap,
            max_concurrent=row.max_concurrent,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EndpointList(Out):
    endpoints: list[Endpoint]


def _field(key: str, column: str, kind: Kind, optional: bool = True) -> JsonField:
    """Most of an endpoint's fields are `Absent` when unset: optional unless said."""
    return JsonField(key, column, kind, optional)


# `Endpoint` as PostgreSQL writes it for the hot `GET /api/jobs/{jobId}/endpoints`
# (`store.json_sql`), in the model's field order; tests/api/test_fast_lists.py compares it
# with the single-endpoint route's JSON, which FastAPI serializes from the model.
ENDPOINT_JSON = (
    _field("id", "id", "text", False),
    _field("jobId", "job_id", "text", False),
    _field("name", "name", "text", False),
    _field("description", "description", "text"),
    _field("url", "url", "text", False),
    _field("method", "method", "text", False),
    _field("headersJson", "headers_json", "json"),
    _field("bodyJson", "body_json", "json", False),
    _field("timeoutMs", "timeout_ms", "int"),
    _field("maxExecutionTimeMs", "max_execution_time_ms", "int"),
    _field("maxResponseSizeKb", "max_response_size_kb", "int"),
    _field("baselineCron", "baseline_cron", "text"),
    _field("baselineIntervalMs", "baseline_interval_ms", "int"),
    _field("timezone", "timezone", "text", False),
    _field("minIntervalMs", "min_interval_ms", "int"),
    _field("maxIntervalMs", "max_interval_ms", "int"),
    _field("nextRunAt", "next_run_at", "time", False),
    _field("nextRunSource", "next_run_source", "text", False),
    _field("lastRunAt", "last_run_at", "time"),
    _field("failureCount", "failure_count", "int", False),
    _field("pausedUntil", "paused_until", "time"),
    _field("archivedAt", "archived_at", "time"),
    _field("aiHintIntervalMs", "hint_interval_ms", "int"),
    _field("aiHintIntervalExpiresAt", "hint_interval_expires_at", "time"),
    _field("aiHintNextRunAt", "hint_oneshot_at", "time"),
    _field("aiHintNextRunExpiresAt", "hint_oneshot_expires_at", "time"),
    _field("aiHintExpiresAt", "hint_expires_at", "time"),
    _field("aiHintReason", "hint_reason", "text"),
    _field("aiHintSource", "hint_source", "text"),
    _field("aiMode", "ai_mode", "text", False),
    _field("assertions", "assertions", "json"),
    _field("rules", "rules", "json"),
    _field("retry", "retry", "json"),
    _field("overlap", "overlap", "text", False),
    _field("maxConcurrent", "max_concurrent", "int"),
    _field("version", "version", "int", False),
    _field("createdAt", "created_at", "time", False),
    _field("updatedAt", "updated_at", "time", False),
)


# -- steering -------------------------------------------------------------------------------
Ttl = Annotated[int, Field(ge=1, le=MAX_TTL_MINUTES)]
Reason = Annotated[Text, Field(max_length=1000)]


class IntervalHintIn(In):
    interval_ms: IntervalMs
    ttl_minutes: Ttl = 60
    reason: Reason | None = None


class OneshotHintIn(In):
    """Exactly one of `nextRunAt` (an instant) or `nextRunInMs` (from now)."""

    next_run_at: InDatetime | None = None
    next_run_in_ms: Annotated[int, Field(ge=1, le=MAX_INTERVAL_MS)] | None = None
    ttl_minutes: Ttl | None = Field(
        default=None,
        description="How long the hint lives; without it, until 60 minutes after the run "
        "(so a run later than an hour from now still happens)",
    )
    reason: Reason | None = None


class PauseIn(In):
    """`pausedUntil: null` resumes. `reason` is accepted for compatibility and not stored."""

    paused_until: InDatetime | None
    reason: Reason | None = None

    @model_validator(mode="before")
    @classmethod
    def _ignore_path_ids(cls, data: Any) -> Any:
        # The reference's web client repeats the path ids in the body; they are not fields.
        if isinstance(data, dict) and ("id" in data or "jobId" in data):
            return {k: v for k, v in data.items() if k not in ("id", "jobId")}
        return data


class PlannedRun(Out):
    at: UtcDatetime
    source: str
    reason: str
    notes: list[str] = Field(
        default_factory=list,
        description="What happens at the slot beyond its time: retries within it, and the "
        "overlap policy for a slot due while a run is still going",
        examples=[
            [
                "retry: a failed call is tried up to 3 times within its slot (exponential from "
                "500 ms to 10000 ms) on 5xx, timeout, connection; the next slot never starts "
                "before the retries end"
            ]
        ],
    )
    rules: Absent[list[str]] = Field(
        default=None,
        description="What each of the endpoint's response rules would do after this run if "
        "it fires (clamped like any hint; a sibling is named); absent without rules",
        examples=[
            [
                "rule 'deep queue': when $.queue.depth > 100, interval 1 s for 10 min "
                "(clamped to min 5 s)"
            ]
        ],
    )


class Preview(Out):
    endpoint_id: str
    runs: list[PlannedRun]


class TestResult(Out):
    run_id: str
    status: Literal["success", "failed"]
    duration_ms: int
    status_code: Absent[int] = None
    response_body: JsonValue = Field(description="JSON, else the text; null when there was none")
    error_message: Absent[str] = None
