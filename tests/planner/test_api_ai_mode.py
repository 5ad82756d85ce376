"""`aiMode` over the REST API: the job's default, each endpoint's override, and the
round trip through export and import."""

from __future__ import annotations

from api.api_support import Client

ENDPOINT = {"name": "queue", "url": "https://example.com/q", "baselineIntervalMs": 60000}


async def test_job_default_endpoint_override_and_transfer(
    clients: tuple[Client, Client],
) -> None:
    alice, bob = clients
    status, job = await alice.call("POST", "/jobs", {"name": "watch", "aiMode": "suggest"})
    assert status == 201
    assert job["aiMode"] == "suggest"
    status, plain = await alice.call("POST", "/jobs", {"name": "plain"})
    assert plain["aiMode"] == "auto"
    assert (await alice.call("POST", "/jobs", {"name": "x", "aiMode": "yolo"}))[0] == 422
    assert (await alice.call("PATCH", f"/jobs/{plain['id']}", {"aiMode": None}))[0] == 422
    status, patched = await alice.call("PATCH", f"/jobs/{plain['id']}", {"aiMode": "off"})
    assert (status, patched["aiMode"]) == (200, "off")

    status, ep = await alice.call("POST", f"/jobs/{job['id']}/endpoints", ENDPOINT)
    assert (status, ep["aiMode"]) == (201, "inherit")
    path = f"/jobs/{job['id']}/endpoints/{ep['id']}"
    status, ep = await alice.call("PATCH", path, {"aiMode": "off"})
    assert (status, ep["aiMode"]) == (200, "off")
    status, ep = await alice.call("PATCH", path, {"aiMode": None})
    assert (status, ep["aiMode"]) == (200, "inherit")
    assert (await alice.call("PATCH", path, {"aiMode": "sometimes"}))[0] == 422
    await alice.call("PATCH", path, {"aiMode": "auto"})

    status, doc = await alice.call("GET", "/export")
    assert status == 200
    modes = {j["name"]: (j["aiMode"], [e["aiMode"] for e in j["endpoints"]]) for j in doc["jobs"]}
    assert modes == {"watch": ("suggest", ["auto"]), "plain": ("off", [])}
    status, report = await bob.call("POST", "/import", doc)
    assert status == 200
    status, jobs = await bob.call("GET", "/jobs")
    assert {j["name"]: j["aiMode"] for j in jobs["jobs"]} == {"watch": "suggest", "plain": "off"}
    doc["jobs"][0]["aiMode"] = "auto"
    status, report = await bob.call("POST", "/import", doc)
    changed = [a for a in report["actions"] if a["action"] == "update"]
    assert [(a["name"], a["changes"]) for a in changed] == [("watch", ["aiMode"])]
    status, again = await bob.call("POST", "/import", doc)
    assert again["updated"] == {"jobs": 0, "endpoints": 0}
