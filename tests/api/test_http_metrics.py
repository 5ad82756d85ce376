"""HTTP requests on `/metrics`: counted and timed by route template, never by raw path."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from api.api_support import Served
from cronicorn.domain.ids import new_id

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(served: Served) -> Samples:
    async with served.a.http.get(f"{served.base}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_requests_are_counted_and_timed_by_route_template(served: Served) -> None:
    before = await _scrape(served)
    missing = [new_id(), new_id()]
    for endpoint_id in missing:
        assert (await served.a.call("GET", f"/jobs/{endpoint_id}"))[0] == 404
    assert (await served.a.call("GET", "/jobs"))[0] == 200
    assert (await served.a.call("GET", "/no/such/route"))[0] == 404
    after = await _scrape(served)

    requests = "cronicorn_http_requests_total"
    assert _delta(before, after, requests, method="GET", route="/api/jobs/{id}", status="404") == 2
    assert _delta(before, after, requests, method="GET", route="/api/jobs", status="200") == 1
    assert _delta(before, after, requests, method="GET", route="unmatched", status="404") == 1
    timed = "cronicorn_http_request_duration_seconds_count"
    assert _delta(before, after, timed, method="GET", route="/api/jobs/{id}") == 2
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not any(endpoint_id in route for route in routes for endpoint_id in missing)
