"""Typed errors raised by the resource repositories.

The faces map each to one status (404/409/422/403) in `error_table.py`, the CLI maps
them to one line on stderr; neither edge parses message text.
"""

from __future__ import annotations

from datetime import datetime


class StoreError(Exception):
    """Base of the errors a repository raises on purpose."""

    def __init__(self, message: str | None = None) -> None:
        # Raised without a message, an error says its docstring's first line.
        super().__init__(message or (self.__doc__ or "").split("\n", 1)[0])


class NotFound(StoreError):
    """The resource does not exist or belongs to another user (the two look the same)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


class Conflict(StoreError):
    """The request is valid but the resource's state forbids it (e.g. resuming an archived job)."""


class Invalid(StoreError):
    """A value breaks a rule that needs the stored row to check (field is the snake_case name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class QuotaExceeded(StoreError):
    """A per-user quota the operator set is used up (`quota`: which one, as its setting)."""

    def __init__(
        self, quota: str, message: str, *, limit: int, used: int, resets_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.quota = quota
        self.message = message
        self.limit = limit
        self.used = used
        self.resets_at = resets_at
