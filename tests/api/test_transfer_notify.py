"""Notify settings travel in import/export: channels by name (never their URLs), a fresh
account that lacks a named channel is refused with every missing name (nothing written), and
once it has them, export → import → export keeps every setting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW
from cronicorn.schemas.transfer import TransferDocument
from cronicorn.services.transfer import export_document, import_document
from cronicorn.store import channels as channel_store
from cronicorn.store.errors import Invalid
from cronicorn.store.tables import jobs

DOC: dict[str, Any] = {
    "version": 1,
    "jobs": [
        {
            "name": "billing",
            "notify": {"channels": ["ops"], "onFailureAfter": 3, "reminderHours": 6},
            "endpoints": [
                {"name": "sync", "url": "https://example.com/sync", "baselineIntervalMs": 60000},
                {
                    "name": "report",
                    "url": "https://example.com/report",
                    "baselineIntervalMs": 60000,
                    "notify": {
                        "channels": ["pager", "OPS"],
                        "onRecovery": False,
                        "slowerThanMs": 5000,
                    },
                },
            ],
        }
    ],
}


async def _allow(url: str) -> str | None:
    return None


async def _import(engine: AsyncEngine, user_id: str, doc: dict[str, Any]) -> Any:
    async with engine.begin() as conn:
        return await import_document(
            conn, user_id, TransferDocument.model_validate(doc), NOW, check_url=_allow
        )


async def _export(engine: AsyncEngine, user_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await export_document(conn, user_id, NOW)


async def _channels(engine: AsyncEngine, user_id: str, *names: str) -> None:
    async with engine.begin() as conn:
        for name in names:
            await channel_store.create(
                conn,
                user_id,
                name=name,
                kind="json",
                encrypted=b"ciphertext with a token",
                preview=f"json://hooks.example.com/{name}",
                now=NOW,
            )


async def test_notify_settings_round_trip_by_channel_name(
    engine: AsyncEngine, alice: str, bob: str
) -> None:
    await _channels(engine, alice, "ops", "pager")
    await _import(engine, alice, DOC)
    exported = await _export(engine, alice)
    assert exported["channels"] == [
        {"name": "ops", "kind": "json"},
        {"name": "pager", "kind": "json"},
    ]
    [billing] = exported["jobs"]
    assert billing["notify"] == {
        "channels": ["ops"],
        "onFailureAfter": 3,
        "onRecovery": True,
        "reminderHours": 6,
    }
    sync, report = billing["endpoints"]
    assert "notify" not in sync, "unset: left out, never null"
    assert report["notify"] == {
        "channels": ["pager", "ops"],
        "onFailureAfter": 1,
        "onRecovery": False,
        "reminderHours": 0,
        "slowerThanMs": 5000,
    }
    assert "ciphertext" not in json.dumps(exported)
    assert "hooks.example.com" not in json.dumps(exported), "no URL, not even its preview"

    # A fresh account without those channels: refused as a whole, every missing name said.
    with pytest.raises(Invalid) as caught:
        await _import(engine, bob, exported)
    assert caught.value.field == "jobs.0.notify.channels"
    assert "'ops' (json), 'pager' (json)" in caught.value.message
    assert await _export(engine, bob) == {
        "version": 1,
        "exportedAt": exported["exportedAt"],
        "jobs": [],
    }

    await _channels(engine, bob, "ops", "pager")
    first = await _import(engine, bob, exported)
    assert (first.created.jobs, first.created.endpoints) == (1, 2)
    assert await _export(engine, bob) == exported
    again = await _import(engine, bob, exported)
    assert (again.unchanged.jobs, again.unchanged.endpoints) == (1, 2)

    # The document is the truth: settings it leaves out are cleared.
    del exported["jobs"][0]["notify"]
    cleared = await _import(engine, bob, exported)
    assert [(a.name, a.action, a.changes) for a in cleared.actions if a.kind == "job"] == [
        ("billing", "update", ["notify"])
    ]
    async with engine.connect() as conn:
        stored = await conn.scalar(select(jobs.c.notify).where(jobs.c.user_id == bob))
    assert stored is None
