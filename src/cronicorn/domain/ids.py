"""Time-sortable, collision-free ids: UUIDv7 (RFC 9562) as 36-char lowercase text.

Python 3.11 has no `uuid.uuid7`, so it is built here: 48-bit Unix milliseconds, version 7,
variant 0b10, and 74 random bits. Within one process ids are strictly increasing: inside the
same millisecond (or if the clock steps back) the random part is incremented instead of
redrawn (RFC 9562 §6.2, method 2). A forked child starts a fresh sequence.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

_RAND_BITS = 74
_RAND_B_BITS = 62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_clock = time.time_ns  # module attribute so tests can step the clock back
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _reset_after_fork() -> None:
    global _last_ms
    _last_ms = -1


os.register_at_fork(after_in_child=_reset_after_fork)


def _next_stamp() -> tuple[int, int]:
    """(milliseconds, random part), strictly increasing as a pair within this process."""
    global _last_ms, _last_rand
    with _lock:
        ms = _clock() // 1_000_000
        if ms > _last_ms:
            rand = secrets.randbits(_RAND_BITS - 1)  # top bit clear: room to increment
        else:
            ms, rand = _last_ms, _last_rand + 1
            if rand >> _RAND_BITS:
                ms, rand = ms + 1, secrets.randbits(_RAND_BITS - 1)
        _last_ms, _last_rand = ms, rand
        return ms, rand


def new_id() -> str:
    """A new UUIDv7 string; later calls in a process sort after earlier ones."""
    ms, rand = _next_stamp()
    rand_a = rand >> _RAND_B_BITS
    rand_b = rand & ((1 << _RAND_B_BITS) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def id_time(value: str) -> datetime:
    """The creation instant (millisecond precision, UTC) encoded in a UUIDv7 id."""
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"not a UUIDv7: {value!r}")
    return _EPOCH + timedelta(milliseconds=parsed.int >> 80)
