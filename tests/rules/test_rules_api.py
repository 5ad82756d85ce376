"""Rules at the API: validated (422 naming the field), targets limited to the same job of the
same user, kept through import/export, and the fired rules shown on the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, serving
from cronicorn.domain.ids import new_id
from cronicorn.store.tables import endpoints, runs

ENDPOINT = {"name": "monitor", "url": "https://example.com/m", "baselineIntervalMs": 60000}


async def _job(client: Client, name: str) -> str:
    status, job = await client.call("POST", "/jobs", {"name": name})
    assert status == 201, job
    return str(job["id"])


async def _create(client: Client, job_id: str, **fields: Any) -> tuple[int, Any]:
    return await client.call("POST", f"/jobs/{job_id}/endpoints", {**ENDPOINT, **fields})


def pause(target: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "shed",
            "when": {"jsonPath": "$.load", "op": "==", "value": "high"},
            "then": {"action": "pause", "forMinutes": 15, "target": target},
        }
    ]


async def test_rules_validate_targets_and_travel(database_url: str, engine: AsyncEngine) -> None:
    async with serving(database_url, engine) as served:
        a, b = served.a, served.b
        sale = await _job(a, "flash sale")
        other = await _job(a, "other")
        status, analytics = await _create(a, sale, name="analytics")
        assert status == 201, analytics
        _, elsewhere = await _create(a, other, name="elsewhere")
        bob_job = await _job(b, "bob")
        _, bobs = await _create(b, bob_job, name="bobs")

        status, monitor = await _create(a, sale, rules=pause(analytics["id"]))
        assert status == 201, monitor
        assert monitor["rules"] == pause(analytics["id"])

        for foreign in (elsewhere["id"], bobs["id"], "nope"):
            status, body = await _create(a, sale, name=f"m-{foreign}", rules=pause(foreign))
            assert status == 422, body
            detail = body["error"]["details"][0]
            assert detail["path"] == "rules"
            assert detail["message"] == (
                f"rules[0].then.target: {foreign} is not an endpoint of this job"
            )
            status, body = await a.call(
                "PATCH", f"/jobs/{sale}/endpoints/{monitor['id']}", {"rules": pause(foreign)}
            )
            assert status == 422, body

        bad = [{"when": {"regex": "(?<=x)y"}, "then": {"action": "clear"}}]
        status, body = await _create(a, sale, name="bad", rules=bad)
        assert status == 422, body
        assert body["error"]["details"][0]["path"] == "rules"
        assert "rules[0].when.regex" in body["error"]["details"][0]["message"]
        status, body = await _create(
            a, sale, name="bad2", rules=[{"when": {"status": [200]}, "then": {"action": "nap"}}]
        )
        assert status == 422, body
        assert "rules[0].then.action" in body["error"]["details"][0]["message"]

        status, doc = await a.call("GET", "/export")
        assert status == 200
        sale_doc = next(j for j in doc["jobs"] if j["name"] == "flash sale")
        assert next(e for e in sale_doc["endpoints"] if e["name"] == "monitor")["rules"] == pause(
            analytics["id"]
        )
        status, report = await a.call("POST", "/import", {"jobs": doc["jobs"]})
        assert status == 200, report
        assert report["updated"]["endpoints"] == 0

        async with engine.begin() as conn:  # as the scheduler writes a rule's hint
            await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == monitor["id"])
                .values(
                    hint_interval_ms=5000,
                    hint_interval_expires_at=datetime.now(UTC) + timedelta(hours=1),
                    hint_source="rule",
                )
            )
        status, preview = await a.call("GET", f"/endpoints/{monitor['id']}/preview")
        assert status == 200, preview
        # the first is the slot already stored; every later one follows the rule's hint
        assert {r["source"] for r in preview["runs"][1:]} == {"rule"}, preview
        assert preview["runs"][1]["reason"].startswith("hint written by a response rule")
        shed = (
            "rule 'shed': when $.load == \"high\", pause for 15 min "
            f"on sibling 'analytics' ({analytics['id']})"
        )
        assert [r["rules"] for r in preview["runs"]] == [[shed]] * len(preview["runs"])
        status, plain = await a.call("GET", f"/endpoints/{analytics['id']}/preview")
        assert status == 200, plain
        assert all("rules" not in r for r in plain["runs"]), plain  # absent without rules

        run_id = new_id()
        fired = [{"index": 0, "name": "shed", "action": "pause", "target": analytics["id"]}]
        async with engine.begin() as conn:
            await conn.execute(
                insert(runs).values(
                    id=run_id,
                    endpoint_id=monitor["id"],
                    user_id=a.user_id,
                    status="success",
                    source="baseline-interval",
                    started_at=datetime.now(UTC),
                    rules_fired=fired,
                )
            )
        status, run = await a.call("GET", f"/runs/{run_id}")
        assert status == 200, run
        assert run["rulesFired"] == fired
