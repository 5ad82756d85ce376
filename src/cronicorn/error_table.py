"""The one error table: each typed error the faces can meet, as an HTTP status, a code and
the envelope's message and details. The REST API (`api/errors.py`), the web pages and the MCP
tools all answer from it, so a refusal reads the same wherever it is met; the CLI's one-line
form of the same errors is `commands/common.py`.

Errors are looked up along their class's MRO (as starlette looks up exception handlers), so a
subclass without its own row answers as its base. Errors carry their default message as the
first line of their docstring (`store/errors.py`, `auth/errors.py`, `backup/errors.py`).
Anything not in the table is a bug (500), except the database refusals at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cronicorn.auth.errors import InvalidCredentials, InvalidInput, SignupDisabled, UserExists
from cronicorn.backup.errors import BackupBusy, BackupError, BackupNotFound
from cronicorn.schemas.common import camel, iso_ms
from cronicorn.store.errors import Conflict, Invalid, NotFound, QuotaExceeded

RETRY_SOON = {"Retry-After": "1"}


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a face answers for a known error (`status` as HTTP says it)."""

    status: int
    code: str
    message: str
    details: Any = None
    headers: Mapping[str, str] | None = None


def invalid_field(field: str, message: str, where: str = "body") -> Refusal:
    """A 422 on one field: the message names the (camelCase) path, the details carry it."""
    path = camel(field)
    details = [{"path": path, "in": where, "message": message, "type": "value_error"}]
    return Refusal(422, "validation_error", f"{message} at '{path}'", details)


def _invalid(exc: Invalid) -> Refusal:
    return invalid_field(exc.field, exc.message)


def _invalid_input(exc: InvalidInput) -> Refusal:
    details = [{"path": exc.field, "in": "body", "message": str(exc)}]
    return Refusal(422, "validation_error", str(exc), details)


def _quota(exc: QuotaExceeded) -> Refusal:
    details: dict[str, Any] = {"quota": exc.quota, "limit": exc.limit, "used": exc.used}
    if exc.resets_at is not None:
        details["resetsAt"] = iso_ms(exc.resets_at)
    return Refusal(403, "quota_exceeded", exc.message, details)


def _simple(status: int, code: str) -> Callable[[Any], Refusal]:
    def refusal(exc: Exception) -> Refusal:
        return Refusal(status, code, str(exc))

    return refusal


TABLE: dict[type[Exception], Callable[[Any], Refusal]] = {
    # store/errors.py
    NotFound: _simple(404, "not_found"),
    Conflict: _simple(409, "conflict"),
    Invalid: _invalid,
    QuotaExceeded: _quota,
    # auth/errors.py
    InvalidCredentials: _simple(401, "invalid_credentials"),
    SignupDisabled: _simple(403, "signup_disabled"),
    UserExists: _simple(409, "user_exists"),
    InvalidInput: _invalid_input,
    # backup/errors.py
    BackupNotFound: _simple(404, "not_found"),
    BackupBusy: _simple(409, "conflict"),
    BackupError: _simple(503, "backup_failed"),
}
"""Typed error → its refusal. Add a row here, not a try/except in a route."""


def refusal_of(exc: BaseException) -> Refusal | None:
    """The refusal for a known error, or None (a bug: the face answers 500 and logs it)."""
    for cls in type(exc).__mro__:
        build = TABLE.get(cls)
        if build is not None:
            return build(exc)
    if isinstance(exc, DBAPIError):
        return database_refusal(exc)
    if isinstance(exc, PoolTimeout):
        return Refusal(503, "unavailable", "The database is busy; retry shortly.", None, RETRY_SOON)
    return None


def database_refusal(exc: DBAPIError) -> Refusal | None:
    """A database error that is not the request's fault and goes away on retry: a deadlock or
    serialization failure PostgreSQL broke by aborting this transaction (nothing of it was
    written), or a database that is unreachable or shutting down. None for anything else,
    which is a bug and stays a 500."""
    sqlstate = exc.orig.sqlstate if isinstance(exc.orig, psycopg.Error) else None
    if sqlstate is not None and sqlstate.startswith("40"):  # class 40: transaction rollback
        message = "A concurrent change got in the way; nothing was written. Retry."
        return Refusal(503, "busy", message, None, RETRY_SOON)
    if isinstance(exc.orig, psycopg.OperationalError) or exc.connection_invalidated:
        message = "The database is unavailable; retry shortly."
        return Refusal(503, "unavailable", message, None, RETRY_SOON)
    return None
