"""What one execution produced, in the shape the run row stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronicorn.store.claims import Claimed
from cronicorn.store.run_writes import RunOutcome


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    succeeded: bool
    duration_ms: int | None = None
    status_code: int | None = None
    body_json: Any = None  # a JSON body, parsed (stored as jsonb); None: see body_text
    body_text: str | None = None  # any other body, as text
    size: int | None = None
    truncated: bool = False
    error: str | None = None
    attempts: list[dict[str, Any]] | None = None  # each call of a retried slot

    @classmethod
    def failed(cls, error: str) -> HttpOutcome:
        return cls(succeeded=False, error=error)

    def run(self, run_id: str, started_at: datetime, finished_at: datetime) -> RunOutcome:
        return RunOutcome(
            run_id=run_id,
            status="success" if self.succeeded else "failed",
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=self.duration_ms,
            status_code=self.status_code,
            body_json=self.body_json,
            body_text=self.body_text,
            size=self.size,
            truncated=self.truncated,
            error=self.error,
            attempts=self.attempts,
        )


Execute = Callable[[Claimed, list[bytes]], Awaitable[HttpOutcome]]
"""Performs one claimed call with the user's signing keys; never raises for HTTP problems."""


def clean_text(value: str) -> str:
    """Text PostgreSQL accepts (no NUL characters, no lone surrogates)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value.encode("utf-8", "replace").decode("utf-8")
