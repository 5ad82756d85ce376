"""`store.json_rows`: the scheduler's batch rows as one JSON document. Whatever a parsed
response body can hold comes back as the same values, including what pydantic's encoder
refuses (lone surrogates, nesting past its depth of 255) through the `json.dumps` fallback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cronicorn.store.json_rows import json_rows

DEEP = json.loads("[" * 300 + "]" * 300)  # a body json.loads accepts, nested past 255


@pytest.mark.parametrize(
    "body",
    [
        {"ok": True, "n": 7, "x": 1e-05, "big": 10**40, "neg": -(2**63), "s": "é\u2028\x1f"},
        {"lone": "\ud800"},  # falls back: PostgreSQL then refuses the escape, as before
        DEEP,
        [None, 0.1, 5e-324, 1.7976931348623157e308],
    ],
    ids=["plain", "surrogate", "deep", "numbers"],
)
def test_the_rows_come_back_as_they_went(body: Any) -> None:
    rows = [{"id": "r1", "body": body, "error": None}, {"id": "r2", "body": None}]
    assert json.loads(json_rows(rows)) == rows
