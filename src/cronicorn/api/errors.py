"""The one error envelope: `{"error": {"code", "message", "details", "requestId"}}`.

Routers raise `ApiError` (or a typed domain/store error mapped here); everything is turned into
the envelope once, at the edge. Unexpected exceptions become a 500 whose message hides the
internals; the traceback goes to the log with the request id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cronicorn.error_table import TABLE, Refusal, database_refusal, invalid_field, refusal_of
from cronicorn.logs import get_logger
from cronicorn.requestid import current_request_id

log = get_logger("cronicorn.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _STATUS_CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers


def envelope(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "requestId": current_request_id(),
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        out.append(
            {
                "path": ".".join(loc[1:] if loc and loc[0] in {"body", "query", "path"} else loc),
                "in": loc[0] if loc else "",
                "message": err.get("msg", "invalid"),
                "type": err.get("type", "value_error"),
            }
        )
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return envelope(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _field_errors(exc)
        first = details[0] if details else {"path": "", "message": "invalid request"}
        where = f" at '{first['path']}'" if first["path"] else ""
        return envelope(422, "validation_error", f"{first['message']}{where}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return envelope(exc.status_code, code, message, None, exc.headers)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        refusal = database_refusal(exc)
        if refusal is None:
            return await _unexpected(request, exc)
        log.warning("database_refused", error=type(exc.orig).__name__, status=refusal.status)
        return refused(refusal)

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("database_pool_exhausted")
        return _refused_or_bug(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=type(exc).__name__)
        return envelope(500, "internal_error", "Internal server error")


def install_error_mapping(app: FastAPI) -> None:
    """Answer every typed error of `error_table.TABLE` from the table (once, for every
    router; a handler for a base class covers its subclasses)."""

    async def _known(_: Request, exc: Exception) -> JSONResponse:
        return _refused_or_bug(exc)

    for error in TABLE:
        app.add_exception_handler(error, _known)


def refused(refusal: Refusal) -> JSONResponse:
    """The envelope of a refusal from the table."""
    return envelope(refusal.status, refusal.code, refusal.message, refusal.details, refusal.headers)


def _refused_or_bug(exc: Exception) -> JSONResponse:
    refusal = refusal_of(exc)
    if refusal is None:  # a table row always answers; kept total for safety
        log.exception("unhandled_error", error=type(exc).__name__)
        return envelope(500, "internal_error", "Internal server error")
    return refused(refusal)


def invalid_response(field: str, message: str, where: str = "body") -> JSONResponse:
    """A 422 on one field, as the table words `store.errors.Invalid`."""
    return refused(invalid_field(field, message, where))
