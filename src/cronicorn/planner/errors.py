"""Typed planner errors. The docstring is the default message (procrastinate's habit)."""

from __future__ import annotations


class PlannerError(Exception):
    """The AI planner failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ModelUnavailable(PlannerError):
    """The model did not answer (timeout, connection refused, 429 or 5xx after retries)."""


class ModelRefused(PlannerError):
    """The model refused the request (bad key, no such model, or invalid request)."""


class EndpointGone(PlannerError):
    """The endpoint was deleted or archived during its analysis."""


class ToolError(PlannerError):
    """A tool call was rejected; the message goes back to the model."""
