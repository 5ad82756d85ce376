"""What an agent needs to fill a field right: units, allowed values, what null means. Added to
a tool's input schema for the properties whose model gives no description; the constraints
themselves (minimum, maximum, enum, length) come from the models, untouched."""

from __future__ import annotations

from typing import Any

FIELD_NOTES = {
    "name": "A short name, unique within its parent (1-255 characters)",
    "description": "Plain-language guidance the AI planner reads: what this is for, when it "
    "matters, how its schedule may adapt",
    "url": "The http(s) URL to call; must be reachable by the server (private addresses are "
    "refused unless the operator allows them)",
    "method": "HTTP method (default GET)",
    "headersJson": 'Request headers as an object of strings, e.g. {"Authorization": "…"}',
    "bodyJson": "The JSON request body (any JSON value; at most 64 KiB)",
    "timeoutMs": "Timeout of one call, in milliseconds",
    "maxExecutionTimeMs": "The longest a run may take, in milliseconds",
    "maxResponseSizeKb": "Bytes kept of a response, in KiB (the rest is cut off)",
    "baselineIntervalMs": "Run every N milliseconds (at least 1000). Exactly one of this or "
    "baselineCron",
    "baselineCron": "A 5-field cron expression (minute hour day month weekday), read in "
    "`timezone`. Exactly one of this or baselineIntervalMs",
    "timezone": "IANA time zone for baselineCron, e.g. Europe/Berlin (default UTC)",
    "minIntervalMs": "Hard lower limit, in milliseconds: no hint, AI or rule runs it more often",
    "maxIntervalMs": "Hard upper limit, in milliseconds: no hint, AI or rule runs it less often",
    "assertions": "When a 2xx still counts as failed: conditions on status, latency, JSON "
    "paths or regexes (see the responses resource); null: any 2xx succeeds",
    "rules": "Ordered response rules: when a condition on the response holds, change the "
    "schedule (see the responses resource); null: none",
    "retry": "Retries within one run: {attempts 1-10, backoff fixed|exponential, "
    "initialDelayMs, maxDelayMs, on: [statuses, timeout, connection]}; null: none",
    "intervalMs": "The interval to run at, in milliseconds, within minIntervalMs..maxIntervalMs",
    "ttlMinutes": "How long the hint lives, in minutes (at most 30 days)",
    "reason": "Why, in a sentence (shown in the history)",
    "nextRunAt": "An ISO-8601 instant in the future, e.g. 2025-03-10T14:00:00Z",
    "nextRunInMs": "Milliseconds from now",
    "pausedUntil": "An ISO-8601 instant to pause until, or null to resume now",
}


def annotate(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with a description on each known property that has none."""
    for key, prop in schema.get("properties", {}).items():
        note = FIELD_NOTES.get(key)
        if note is not None and isinstance(prop, dict) and "description" not in prop:
            prop["description"] = note
    return schema
