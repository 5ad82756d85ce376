"""The one error envelope: `{"error": {"code", "message", "details", "requestId"}}`.

Routers raise `ApiError` (or a typed domain/store error mapped here); everything is turned into
the envelope once, at the edge. Unexpected exceptions become a 500 whose message hides the
internals; the traceback goes to the log with the request id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cronicorn.logs import get_logger
from cronicorn.requestid import current_request_id
from cronicorn.schemas.common import camel, iso_ms
from cronicorn.store.errors import Conflict, Invalid, NotFound, QuotaExceeded

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


_RETRY = {"Retry-After": "1"}


def database_refusal(exc: DBAPIError) -> ApiError | None:
    """A database error that is not the request's fault and goes away on retry: a deadlock or
    serialization failure PostgreSQL broke by aborting this transaction (nothing of it was
    written), or a database that is unreachable or shutting down. None for anything else,
    which is a bug and stays a 500."""
    sqlstate = exc.orig.sqlstate if isinstance(exc.orig, psycopg.Error) else None
    if sqlstate is not None and sqlstate.startswith("40"):  # class 40: transaction rollback
        message = "A concurrent change got in the way; nothing was written. Retry."
        return ApiError(503, message, code="busy", headers=_RETRY)
    if isinstance(exc.orig, psycopg.OperationalError) or exc.connection_invalidated:
        message = "The database is unavailable; retry shortly."
        return ApiError(503, message, headers=_RETRY)
    return None


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
        return envelope(refusal.status, refusal.code, refusal.message, None, refusal.headers)

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("database_pool_exhausted")
        return envelope(503, "unavailable", "The database is busy; retry shortly.", None, _RETRY)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=type(exc).__name__)
        return envelope(500, "internal_error", "Internal server error")


def install_error_mapping(app: FastAPI) -> None:
    """Map the store's typed errors to the one envelope (done once, for every router)."""

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return envelope(404, "not_found", f"{exc.what} not found")

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return envelope(409, "conflict", str(exc))

    @app.exception_handler(Invalid)
    async def _invalid(_: Request, exc: Invalid) -> JSONResponse:
        return invalid_response(exc.field, exc.message)

    @app.exception_handler(QuotaExceeded)
    async def _quota(_: Request, exc: QuotaExceeded) -> JSONResponse:
        details: dict[str, Any] = {"quota": exc.quota, "limit": exc.limit, "used": exc.used}
        if exc.resets_at is not None:
            details["resetsAt"] = iso_ms(exc.resets_at)
        return envelope(403, "quota_exceeded", exc.message, details)


def invalid_response(field: str, message: str, where: str = "body") -> JSONResponse:
    path = camel(field)
    details: list[dict[str, Any]] = [
        {"path": path, "in": where, "message": message, "type": "value_error"}
    ]
    return envelope(422, "validation_error", f"{message} at '{path}'", details)
