"""Opaque positions in a newest-first list ordered by (time, id), for keyset pagination: a page
deep in a history starts from the row it names through the list's index, so it costs what the
first page does (an offset reads every row it skips)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cronicorn.store.errors import Invalid

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_OURS = "Not a cursor from a previous page (nextCursor)"


def encode(at: datetime, row_id: str) -> str:
    """The position just after the row (`at`, `row_id`) in newest-first order."""
    micros = (at - EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}.{row_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    """The (time, id) a cursor names; `Invalid` ("cursor") for anything we did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, row_id = raw.split(".", 1)
        at = EPOCH + timedelta(microseconds=int(micros))
    except (ValueError, OverflowError, UnicodeDecodeError):  # binascii.Error is a ValueError
        raise Invalid("cursor", _NOT_OURS) from None
    if not row_id or not micros.lstrip("-").isascii() or not micros.lstrip("-").isdigit():
        raise Invalid("cursor", _NOT_OURS)
    if "\x00" in row_id:
        raise Invalid("cursor", _NOT_OURS)
    return at, row_id
