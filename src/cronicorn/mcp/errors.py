"""Typed failures become tool errors once, here: the status, code, message and field the REST
API would answer (both read `error_table.py`), so an agent reads the same words a script
would.

A tool error is a normal result with `isError: true` (the model sees it and can correct its
call), never a protocol error or a crash of the session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import mcp.types as types
from pydantic import ValidationError

from cronicorn.error_table import invalid_field, refusal_of
from cronicorn.logs import get_logger
from cronicorn.schemas.common import camel
from cronicorn.store.errors import Invalid

log = get_logger("cronicorn.mcp")


@dataclass
class ToolError(Exception):
    """A refusal in the API's words (`status` as the REST route would answer it)."""

    status: int
    code: str
    message: str
    details: Any = None
    field: str | None = field(default=None)

    def __str__(self) -> str:
        return self.message


def invalid(path: str, message: str, where: str = "body") -> ToolError:
    """A 422 on one field, worded as the API's `invalid_response` (camelCase path)."""
    refusal = invalid_field(path, message, where)
    return ToolError(refusal.status, refusal.code, refusal.message, refusal.details, camel(path))


def from_validation(exc: ValidationError) -> ToolError:
    """pydantic's errors as the API's 422 details (paths use the camelCase names sent)."""
    details = [
        {
            "path": ".".join(str(part) for part in err["loc"]),
            "in": "arguments",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = details[0] if details else {"path": "", "message": "invalid arguments"}
    where = f" at '{first['path']}'" if first["path"] else ""
    return ToolError(
        422, "validation_error", f"{first['message']}{where}", details, first["path"] or None
    )


def to_tool_error(exc: Exception) -> ToolError | None:
    """The tool error for a known failure, or None for a bug."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation(exc)
    refusal = refusal_of(exc)
    if refusal is None:
        return None
    shown = camel(exc.field) if isinstance(exc, Invalid) else None
    return ToolError(refusal.status, refusal.code, refusal.message, refusal.details, shown)


def error_result(tool: str, exc: Exception) -> types.CallToolResult:
    """The `isError` result for any exception a tool raised (a bug is logged, not shown)."""
    error = to_tool_error(exc)
    if error is None:
        log.exception("mcp_tool_crashed", tool=tool, error=type(exc).__name__)
        error = ToolError(500, "internal_error", "Internal server error")
    body: dict[str, Any] = {
        "status": error.status,
        "code": error.code,
        "message": error.message,
        "details": error.details,
    }
    if error.field is not None:
        body["field"] = error.field
    text = f"API Error ({error.status}): {error.message}"
    if error.details:
        text += "\n" + json.dumps(error.details, separators=(",", ":"), default=str)
    return types.CallToolResult(
        content=[types.TextContent(text=text)],
        structured_content={"error": body},
        is_error=True,
    )
