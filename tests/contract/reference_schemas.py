"""The reference's response schemas, rewritten as JSON Schema (draft 2020-12).

Copied from the original Cronicorn's zod contracts (`@cronicorn/api-contracts`, the MCP
server's output schemas; summarised in the design reference `api-and-operations.md` §1.7 and
§3) so that its clients keep working against us. Zod semantics carried over:
- `z.object` strips unknown keys, so extra fields are allowed (`additionalProperties`);
- `.optional()` means "may be absent" and refuses `null`;
- `.nullable()` accepts `null` (and stays required unless also `.optional()`);
- `z.string().datetime()` is ISO 8601 in UTC with a `Z` and no offset.

These are the client's expectations, not our documentation: they must stay as the reference
wrote them, even where our API returns more.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

DATETIME: Schema = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$",
}
STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}
METHOD: Schema = {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A zod object: `required` keys must be present, `optional` ones may be absent."""
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


# -- jobs (JobResponseBaseSchema, JobWithCountResponseBaseSchema) --------------------------
_JOB_REQUIRED = {
    "id": STRING,
    "userId": STRING,
    "name": STRING,
    "status": {"enum": ["active", "paused", "archived"]},
    "createdAt": DATETIME,
    "updatedAt": DATETIME,
}
_JOB_OPTIONAL = {"description": STRING, "archivedAt": DATETIME}
JOB = obj(_JOB_REQUIRED, _JOB_OPTIONAL)
JOB_WITH_COUNT = obj({**_JOB_REQUIRED, "endpointCount": INT}, _JOB_OPTIONAL)
JOB_LIST = obj({"jobs": array(JOB_WITH_COUNT)})

# -- endpoints (EndpointResponseBaseSchema) --------------------------------------------------
ENDPOINT = obj(
    {"id": STRING, "name": STRING, "nextRunAt": DATETIME, "failureCount": INT},
    {
        "jobId": STRING,
        "description": STRING,
        "baselineCron": STRING,
        "baselineIntervalMs": NUMBER,
        "minIntervalMs": NUMBER,
        "maxIntervalMs": NUMBER,
        "lastRunAt": DATETIME,
        "pausedUntil": DATETIME,
        "archivedAt": DATETIME,
        "url": STRING,
        "method": METHOD,
        "headersJson": {"type": "object", "additionalProperties": STRING},
        "bodyJson": ANY,
        "timeoutMs": NUMBER,
        "maxExecutionTimeMs": NUMBER,
        "maxResponseSizeKb": NUMBER,
        "aiHintIntervalMs": INT,
        "aiHintNextRunAt": DATETIME,
        "aiHintExpiresAt": DATETIME,
        "aiHintReason": STRING,
    },
)
ENDPOINT_LIST = obj({"endpoints": array(ENDPOINT)})

# -- runs (RunSummaryResponseBaseSchema, RunDetailsResponseBaseSchema) ----------------------
RUN_SUMMARY = obj(
    {"runId": STRING, "endpointId": STRING, "startedAt": DATETIME, "status": STRING},
    {"durationMs": NUMBER, "source": STRING},
)
RUN_LIST = obj({"runs": array(RUN_SUMMARY), "total": INT})
RUN_DETAILS = obj(
    {
        "id": STRING,
        "endpointId": STRING,
        "status": STRING,
        "startedAt": DATETIME,
        "attempt": INT,
    },
    {
        "finishedAt": DATETIME,
        "durationMs": NUMBER,
        "errorMessage": STRING,
        "source": STRING,
        "responseBody": ANY,  # z.any().nullable().optional()
        "statusCode": INT,
        "endpoint": obj({"id": STRING, "name": STRING}, {"url": STRING, "method": METHOD}),
    },
)

# -- health and run now (HealthSummaryResponseBaseSchema, TestEndpointResponseBaseSchema) -----
HEALTH = obj(
    {
        "successCount": INT,
        "failureCount": INT,
        "avgDurationMs": nullable(NUMBER),
        "lastRun": nullable(obj({"status": STRING, "at": DATETIME})),
        "failureStreak": INT,
    }
)
TEST_RESULT = obj(
    {"runId": STRING, "status": {"enum": ["success", "failed"]}, "durationMs": NUMBER},
    {"statusCode": INT, "responseBody": ANY, "errorMessage": STRING},
)

# -- AI sessions (sessions/schemas.ts) -------------------------------------------------------
TOOL_CALL = obj({"tool": STRING, "args": ANY, "result": ANY})
WARNING = obj(
    {
        "code": {"enum": ["output_truncated", "missing_final_tool", "missing_reasoning"]},
        "message": STRING,
    },
    {"meta": {"type": "object"}},
)
_SESSION = {
    "id": STRING,
    "analyzedAt": DATETIME,
    "toolCalls": array(TOOL_CALL),
    "reasoning": STRING,
    "tokenUsage": nullable(INT),
    "durationMs": nullable(INT),
    "warnings": array(WARNING),
}
AI_SESSION = obj(_SESSION)
SESSION_LIST = obj({"sessions": array(AI_SESSION), "total": {"type": "integer", "minimum": 0}})
SESSION_DETAIL = obj({**_SESSION, "endpointId": STRING, "endpointName": STRING})

# -- dashboard (DashboardStatsResponseSchema, activity timeline) -----------------------------
_COUNT = {"type": "integer", "minimum": 0}
DASHBOARD_STATS = obj(
    {
        "jobs": obj({"total": _COUNT}),
        "endpoints": obj({"total": _COUNT, "active": _COUNT, "paused": _COUNT}),
        "successRate": obj(
            {
                "overall": {"type": "number", "minimum": 0, "maximum": 100},
                "trend": {"enum": ["up", "down", "stable"]},
            }
        ),
        "recentActivity": obj({"runs24h": _COUNT, "success24h": _COUNT, "failure24h": _COUNT}),
        "jobHealth": array(
            obj(
                {
                    "jobId": STRING,
                    "jobName": STRING,
                    "successCount": _COUNT,
                    "failureCount": _COUNT,
                }
            )
        ),
        "filteredMetrics": obj(
            {
                "totalRuns": _COUNT,
                "successCount": _COUNT,
                "failureCount": _COUNT,
                "avgDurationMs": nullable(NUMBER),
            }
        ),
        "sourceDistribution": array(obj({"source": STRING, "count": _COUNT})),
        "runTimeSeries": array(obj({"date": STRING, "success": _COUNT, "failure": _COUNT})),
        "endpointTimeSeries": array(
            obj(
                {
                    "date": STRING,
                    "endpointId": STRING,
                    "endpointName": STRING,
                    "success": _COUNT,
                    "failure": _COUNT,
                    "totalDurationMs": _COUNT,
                }
            )
        ),
        "endpointTimeSeriesMaxStacked": {"type": "number", "minimum": 0},
        "aiSessionTimeSeries": array(
            obj(
                {
                    "date": STRING,
                    "endpointId": STRING,
                    "endpointName": STRING,
                    "sessionCount": _COUNT,
                    "totalTokens": _COUNT,
                }
            )
        ),
        "aiSessionTimeSeriesMaxStacked": {"type": "number", "minimum": 0},
    }
)
_EVENT_BASE = {
    "id": STRING,
    "endpointId": STRING,
    "endpointName": STRING,
    "timestamp": DATETIME,
}
RUN_EVENT = {
    **obj(
        {**_EVENT_BASE, "type": {"const": "run"}, "status": STRING},
        {"durationMs": NUMBER, "source": STRING},
    ),
    "not": {"anyOf": [{"required": [k]} for k in ("reasoning", "toolCalls", "warnings")]},
}
SESSION_EVENT = {
    **obj(
        {**_EVENT_BASE, "type": {"const": "session"}, "toolCalls": array(TOOL_CALL)},
        {
            "reasoning": STRING,
            "tokenUsage": nullable(INT),
            "warnings": {**array(WARNING), "minItems": 1},  # only when there are any
        },
    ),
    "not": {"anyOf": [{"required": [k]} for k in ("status", "source")]},
}
ACTIVITY = obj(
    {
        "events": array({"oneOf": [RUN_EVENT, SESSION_EVENT]}),
        "total": _COUNT,
        "summary": obj(
            {"runsCount": _COUNT, "sessionsCount": _COUNT, "successRate": NUMBER},
        ),
    }
)

# -- signing keys (signing-keys/schemas.base.ts) ---------------------------------------------
SIGNING_KEY_INFO = obj(
    {
        "hasKey": BOOL,
        "keyPrefix": nullable(STRING),
        "createdAt": nullable(DATETIME),
        "rotatedAt": nullable(DATETIME),
    }
)
SIGNING_KEY_CREATED = obj({"rawKey": STRING, "keyPrefix": STRING})

# -- accounts: devices and sign-in options ---------------------------------------------------
# The reference also listed each session's raw token, a defect we do not copy (§1.7).
DEVICES = obj(
    {
        "devices": array(
            obj(
                {
                    "id": STRING,
                    "userAgent": nullable(STRING),
                    "ipAddress": nullable(STRING),
                    "createdAt": DATETIME,
                    "expiresAt": DATETIME,
                }
            )
        )
    }
)
DEVICE_REVOKED = obj({"success": {"const": True}})
AUTH_CONFIG = obj({"hasEmailPassword": BOOL, "hasGitHubOAuth": BOOL})

EMPTY: Schema = {"type": "object"}
"""What the MCP server makes of a 204 (`{}`), validated against `z.object({})`."""
