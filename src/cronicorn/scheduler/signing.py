"""Signing keys for a claim batch: one query per batch for the users not cached.

Keys are cached per user for a few seconds: a rotation keeps the old key signing for a grace
period (hours), so a cache that is seconds old still signs with a key receivers accept. A
lookup failure fails the batch's runs instead of sending them unsigned (the reference sent
unsigned requests whenever the lookup failed, reference defect 9).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.signing_keys import load_signing_keys

CACHE_TTL_S = 10.0


class SigningKeyCache:
    def __init__(self, engine: AsyncEngine, auth_secret: str, *, ttl_s: float = CACHE_TTL_S):
        self._engine = engine
        self._secret = auth_secret
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, list[bytes]]] = {}

    async def keys_for(self, user_ids: Iterable[str], now: datetime) -> dict[str, list[bytes]]:
        """Keys that sign now, per user (an empty list: the user has no key)."""
        clock = time.monotonic()
        wanted = set(user_ids)
        missing = [u for u in wanted if self._cache.get(u, (0.0, []))[0] <= clock]
        if missing:
            async with self._engine.connect() as conn:
                loaded = await load_signing_keys(conn, missing, now, self._secret)
            for user_id in missing:
                self._cache[user_id] = (clock + self._ttl_s, loaded.get(user_id, []))
            if len(self._cache) > 10_000:
                self._cache = {u: v for u, v in self._cache.items() if v[0] > clock}
        return {u: self._cache[u][1] for u in wanted}
