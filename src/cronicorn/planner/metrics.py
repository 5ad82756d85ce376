"""Prometheus metrics of the planner (default registry, served by `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SESSIONS = Counter(
    "cronicorn_planner_sessions_total", "AI planner sessions, by outcome.", ["outcome"]
)
TOKENS = Counter(
    "cronicorn_planner_tokens_total", "Model tokens used by the planner, by kind.", ["kind"]
)
TOOL_CALLS = Counter(
    "cronicorn_planner_tool_calls_total", "Tool calls the model made, by tool.", ["tool"]
)
TOOL_ERRORS = Counter(
    "cronicorn_planner_tool_errors_total",
    "Tool calls rejected and returned to the model as errors, by tool.",
    ["tool"],
)
MODEL_LATENCY = Histogram(
    "cronicorn_planner_model_latency_seconds",
    "Duration of one chat-completions request.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160),
)
MODEL_RETRIES = Counter(
    "cronicorn_planner_model_retries_total",
    "Chat-completions requests retried, by reason (status code, timeout, connection).",
    ["reason"],
)
SESSIONS_PRUNED = Counter(
    "cronicorn_planner_sessions_deleted_total", "AI sessions deleted by retention."
)
