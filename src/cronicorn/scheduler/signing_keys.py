"""Signing keys for a claim batch: one query per batch for the users not cached.

Keys are cached per user for a few seconds: a rotation keeps the old key signing for a grace
period (hours), so a cache that is seconds old still signs with a key receivers accept. A
lookup failure fails the affected runs instead of sending them unsigned (the reference sent
unsigned requests whenever the lookup failed, reference defect 9); when the batch lookup
fails, users are retried one by one so one undecryptable key fails only its owner's runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.signing_keys import load_signing_keys

CACHE_TTL_S = 10.0


@dataclass
class BatchKeys:
    """Keys per user (an empty list: the user has no key) and why some could not be had."""

    keys: dict[str, list[bytes]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class SigningKeyCache:
    def __init__(self, engine: AsyncEngine, auth_secret: str, *, ttl_s: float = CACHE_TTL_S):
        self._engine = engine
        self._secret = auth_secret
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, list[bytes]]] = {}

    async def keys_for(self, user_ids: Iterable[str], now: datetime) -> BatchKeys:
        clock = time.monotonic()
        wanted = set(user_ids)
        missing = [u for u in wanted if self._cache.get(u, (0.0, []))[0] <= clock]
        result = BatchKeys()
        if missing:
            try:
                loaded = await self._load(missing, now)
            except Exception:
                loaded = {}
                for user_id in missing:
                    try:
                        loaded.update(await self._load([user_id], now))
                    except Exception as exc:
                        result.errors[user_id] = f"{type(exc).__name__}: {exc}"[:200]
            for user_id in missing:
                if user_id not in result.errors:
                    self._cache[user_id] = (clock + self._ttl_s, loaded.get(user_id, []))
            if len(self._cache) > 10_000:
                self._cache = {u: v for u, v in self._cache.items() if v[0] > clock}
        result.keys = {u: self._cache[u][1] for u in wanted if u not in result.errors}
        return result

    async def _load(self, user_ids: list[str], now: datetime) -> dict[str, list[bytes]]:
        async with self._engine.connect() as conn:
            return await load_signing_keys(conn, user_ids, now, self._secret)
