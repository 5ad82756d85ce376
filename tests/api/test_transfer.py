"""Import/export: idempotent by name, all or nothing, dry runs write nothing; and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW, make_user
from cronicorn.schemas.transfer import TransferDocument
from cronicorn.services.transfer import export_document, import_document
from cronicorn.store.errors import Invalid
from cronicorn.store.tables import endpoints, jobs
from support import a_session_waits_on_a_lock, cli_env, run_cli, until

DOC: dict[str, Any] = {
    "version": 1,
    "jobs": [
        {
            "name": "billing",
            "description": "invoices",
            "endpoints": [
                {"name": "sync", "url": "https://example.com/sync", "baselineIntervalMs": 60000},
                {
                    "name": "report",
                    "url": "https://example.com/report",
                    "method": "POST",
                    "bodyJson": {"full": True},
                    "baselineCron": "0 6 * * *",
                    "timezone": "Europe/Berlin",
                },
            ],
        },
        {"name": "idle", "status": "paused", "endpoints": []},
    ],
}


async def _allow(url: str) -> str | None:
    return None


async def _import(
    engine: AsyncEngine, user_id: str, doc: dict[str, Any], *, dry_run: bool = False
) -> Any:
    async with engine.begin() as conn:
        return await import_document(
            conn,
            user_id,
            TransferDocument.model_validate(doc),
            NOW,
            check_url=_allow,
            dry_run=dry_run,
        )


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        n_jobs = await conn.scalar(select(func.count()).select_from(jobs))
        n_endpoints = await conn.scalar(select(func.count()).select_from(endpoints))
    return int(n_jobs or 0), int(n_endpoints or 0)


async def test_import_is_idempotent_and_round_trips(engine: AsyncEngine, alice: str) -> None:
    dry = await _import(engine, alice, DOC, dry_run=True)
    assert (dry.created.jobs, dry.created.endpoints) == (2, 2)
    assert await _counts(engine) == (0, 0)

    first = await _import(engine, alice, DOC)
    assert (first.created.jobs, first.created.endpoints) == (2, 2)
    again = await _import(engine, alice, DOC)
    assert (again.created.jobs, again.created.endpoints, again.updated.endpoints) == (0, 0, 0)
    assert again.unchanged.endpoints == 2
    assert await _counts(engine) == (2, 2)

    async with engine.connect() as conn:
        exported = await export_document(conn, alice, NOW)
    assert [j["name"] for j in exported["jobs"]] == ["billing", "idle"]
    assert exported["jobs"][1]["status"] == "paused"
    report = exported["jobs"][0]["endpoints"][1]
    assert report == {
        "name": "report",
        "url": "https://example.com/report",
        "method": "POST",
        "bodyJson": {"full": True},
        "baselineCron": "0 6 * * *",
        "timezone": "Europe/Berlin",
        "aiMode": "inherit",
        "overlap": "skip",
    }
    # An exported document imports as "nothing to do".
    assert (await _import(engine, alice, exported)).updated.endpoints == 0


async def test_concurrent_imports_of_one_user_run_one_after_the_other(
    engine: AsyncEngine, alice: str
) -> None:
    """The second import waits for the first and then finds its jobs by name: without that,
    both would create 'billing' and 'idle' and the user would have two of each."""
    async with engine.connect() as first:
        doc = TransferDocument.model_validate(DOC)
        await import_document(first, alice, doc, NOW, check_url=_allow)  # left uncommitted
        second = asyncio.create_task(_import(engine, alice, DOC))
        await until(lambda: a_session_waits_on_a_lock(engine), timeout=10, what="second waits")
        await first.commit()
        report = await asyncio.wait_for(second, 10)
    assert (report.created.jobs, report.unchanged.jobs) == (0, 2)
    assert await _counts(engine) == (2, 2)


async def test_import_updates_to_the_document(engine: AsyncEngine, alice: str) -> None:
    await _import(engine, alice, DOC)
    changed = json.loads(json.dumps(DOC))
    sync = changed["jobs"][0]["endpoints"][0]
    del sync["baselineIntervalMs"]
    sync["baselineCron"] = "*/5 * * * *"
    report = await _import(engine, alice, changed)
    update = next(a for a in report.actions if a.name == "sync")
    assert update.action == "update"
    assert set(update.changes) == {"baselineCron", "baselineIntervalMs"}
    async with engine.connect() as conn:
        row = (await conn.execute(select(endpoints).where(endpoints.c.name == "sync"))).one()
    assert (row.baseline_cron, row.baseline_interval_ms) == ("*/5 * * * *", None)


async def test_import_is_all_or_nothing(engine: AsyncEngine, alice: str) -> None:
    bad = json.loads(json.dumps(DOC))
    bad["jobs"][0]["endpoints"][1]["baselineCron"] = "61 * * * *"
    with pytest.raises(Invalid) as caught:
        await _import(engine, alice, bad)
    assert caught.value.field == "jobs.0.endpoints.1.baselineCron"
    assert await _counts(engine) == (0, 0)


async def test_import_is_per_user(engine: AsyncEngine, alice: str, bob: str) -> None:
    await _import(engine, alice, DOC)
    report = await _import(engine, bob, DOC)
    assert report.created.jobs == 2
    async with engine.connect() as conn:
        assert len((await export_document(conn, bob, NOW))["jobs"]) == 2


@pytest.mark.slow
def test_cli_export_and_import(database_url: str, tmp_path: Path) -> None:
    import asyncio

    from cronicorn.store.db import make_async_engine

    async def seed() -> None:
        engine = make_async_engine(database_url, pool_size=1, max_overflow=0)
        try:
            await make_user(engine, "cli@example.com")
        finally:
            await engine.dispose()

    asyncio.run(seed())
    env = cli_env(DATABASE_URL=database_url, AUTH_SECRET="s" * 40)
    source = tmp_path / "jobs.yaml"
    source.write_text(yaml.safe_dump(DOC))

    dry = run_cli("import", str(source), "--user", "cli@example.com", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "Would apply: created 2 job(s) and 2 endpoint(s)" in dry.stdout
    done = run_cli("import", str(source), "--user", "cli@example.com", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] == {"jobs": 2, "endpoints": 2}

    out = tmp_path / "out.json"
    exported = run_cli("export", str(out), "--user", "cli@example.com", env=env)
    assert exported.returncode == 0, exported.stderr
    assert [j["name"] for j in json.loads(out.read_text())["jobs"]] == ["billing", "idle"]

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"version": 1, "jobs": [{"name": "x", "nope": 1}]}))
    failed = run_cli("import", str(broken), "--user", "cli@example.com", env=env)
    assert failed.returncode == 1
    assert failed.stderr.strip().startswith("error: invalid document at jobs.0.nope")
    assert "Traceback" not in failed.stderr
    missing = run_cli("export", "--user", "ghost@example.com", env=env)
    assert missing.returncode == 1
    assert "no user 'ghost@example.com'" in missing.stderr

    more = tmp_path / "more.json"
    endpoint = {"name": "x", "url": "https://example.com/x", "baselineIntervalMs": 60000}
    more.write_text(json.dumps({"version": 1, "jobs": [{"name": "new", "endpoints": [endpoint]}]}))
    full = run_cli(
        "import", str(more), "--user", "cli@example.com", env={**env, "QUOTA_MAX_ENDPOINTS": "2"}
    )
    assert full.returncode == 1
    assert full.stderr.strip() == (
        "error: Endpoint quota reached: 2 of 2 endpoints; archive or delete one first"
    )
    again = run_cli("export", "--user", "cli@example.com", env=env)
    assert [j["name"] for j in json.loads(again.stdout)["jobs"]] == ["billing", "idle"]
