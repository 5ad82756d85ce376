"""Time-sortable, collision-free ids (UUIDv7 text), safe across processes and machines."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_id() -> str:
    """UUIDv7: 48-bit Unix ms, 12-bit sequence (monotonic within a process), 62 random bits."""
    global _last_ms, _seq
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _seq = (_seq + 1) & 0xFFF
            if _seq == 0:
                _last_ms += 1
            now_ms = _last_ms
        else:
            _seq = int.from_bytes(os.urandom(2), "big") & 0x7FF
        _last_ms = now_ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))
