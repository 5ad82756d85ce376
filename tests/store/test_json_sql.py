"""JSON written by PostgreSQL (`store.json_sql`) is the response models' JSON byte for byte:
strings with quotes, backslashes, control characters and any Unicode PostgreSQL stores,
integers, times to the millisecond in UTC from any offset, optional fields left out when
NULL. Evaluated by a real server on bound values, against pydantic's own serialization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb
from pydantic import JsonValue
from sqlalchemy import BigInteger, Text, bindparam, cast, select
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from cronicorn.schemas.common import Absent, Out, UtcDatetime
from cronicorn.store.json_sql import JsonField, joined, json_object, json_parts
from cronicorn.store.read_pool import compiled


class Probe(Out):
    plain: str
    maybe_text: Absent[str] = None
    count: int
    at: UtcDatetime
    maybe_at: Absent[UtcDatetime] = None
    maybe_count: Absent[int] = None


FIELDS = (
    JsonField("plain", "plain", "text"),
    JsonField("maybeText", "maybe_text", "text", optional=True),
    JsonField("count", "count", "int"),
    JsonField("at", "at", "time"),
    JsonField("maybeAt", "maybe_at", "time", optional=True),
    JsonField("maybeCount", "maybe_count", "int", optional=True),
)
_TYPES: dict[str, Any] = {"text": Text, "int": BigInteger, "time": TIMESTAMP(timezone=True)}
_KINDS = {field.column: field.kind for field in FIELDS}
STATEMENT = compiled(
    select(json_object(FIELDS, lambda name: cast(bindparam(name), _TYPES[_KINDS[name]])))
)

# What PostgreSQL's `text` holds: no NUL, no lone surrogates.
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
moments = st.datetimes(
    min_value=datetime(1, 1, 2),  # hypothesis wants naive bounds
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]) | st.timezones(),
)
ints = st.integers(-(2**63), 2**63 - 1)
probes = st.builds(
    Probe,
    plain=texts,
    maybe_text=st.none() | texts,
    count=ints,
    at=moments,
    maybe_at=st.none() | moments,
    maybe_count=st.none() | ints,
)


def _params(probe: Probe) -> dict[str, Any]:
    return STATEMENT.params({name: getattr(probe, name) for name in _KINDS})


@pytest.fixture(scope="module")
def conn(pg_server: Any) -> Any:
    url = pg_server.create_database()
    with psycopg.connect(url, autocommit=True) as connection:
        # A server whose TimeZone is not UTC must still write UTC times.
        connection.execute("SET TIME ZONE 'America/St_Johns'")
        yield connection
    pg_server.drop_database(url)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(probes)
def test_postgresql_writes_the_models_json(conn: psycopg.Connection[Any], probe: Probe) -> None:
    row = conn.execute(STATEMENT.sql, _params(probe)).fetchone()
    assert row is not None
    assert row[0] == probe.model_dump_json(by_alias=True)


def test_the_hard_cases_by_name(conn: psycopg.Connection[Any]) -> None:
    """The values most likely to differ, named so a failure says which."""
    at = datetime(
        2026, 3, 29, 0, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-9, minutes=-30))
    )
    for text in ['"', "\\", "\b\f\n\r\t", "\x01\x1f\x7f", "é ✓ 😀", "\u2028\u2029", "</script>"]:
        probe = Probe(plain=text, maybe_text=text, count=-1, at=at, maybe_at=at, maybe_count=0)
        row = conn.execute(STATEMENT.sql, _params(probe)).fetchone()
        assert row == (probe.model_dump_json(by_alias=True),), repr(text)
    bare = Probe(plain="", count=0, at=datetime(1, 1, 2, tzinfo=UTC))
    row = conn.execute(STATEMENT.sql, _params(bare)).fetchone()
    assert row == ('{"plain":"","count":0,"at":"0001-01-02T00:00:00.000Z"}',)


class WithJson(Out):
    plain: str
    value: JsonValue
    maybe: Absent[JsonValue] = None
    headers: Absent[dict[str, str]] = None
    last: int


JSON_FIELDS = (
    JsonField("plain", "plain", "text"),
    JsonField("value", "value", "json"),
    JsonField("maybe", "maybe", "json", optional=True),
    JsonField("headers", "headers", "json", optional=True),
    JsonField("last", "last", "int"),
)
_JSON_TYPES = {"plain": Text, "value": JSONB, "maybe": JSONB, "headers": JSONB, "last": BigInteger}
JSON_STATEMENT = compiled(
    select(*json_parts(JSON_FIELDS, lambda name: cast(bindparam(name), _JSON_TYPES[name])))
)
json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts,
    json_values,
    st.none() | json_values,
    st.none() | st.dictionaries(texts, texts, max_size=3),
    ints,
)
def test_json_values_are_spliced_in_as_the_model_writes_them(
    conn: psycopg.Connection[Any], plain: str, value: Any, maybe: Any, headers: Any, last: int
) -> None:
    """Whatever the JSONB round trip makes of a value (`1e100` comes back an integer), the
    object is the model's JSON of what came back, as the single-endpoint route serializes."""
    sent = {"plain": plain, "value": value, "maybe": maybe, "headers": headers, "last": last}
    params = {
        k: Jsonb(v) if _JSON_TYPES[k] is JSONB and v is not None else v for k, v in sent.items()
    }
    row = conn.execute(JSON_STATEMENT.sql, JSON_STATEMENT.params(params)).fetchone()
    assert row is not None
    back = {"plain": plain, "value": row[1], "maybe": row[3], "headers": row[5], "last": last}
    assert joined(row, JSON_FIELDS) == WithJson(**back).model_dump_json(by_alias=True)


def test_json_numbers_come_out_as_pydantic_writes_them(conn: psycopg.Connection[Any]) -> None:
    """Numbers where Python's `json` and pydantic differ (`1e-05` against `0.00001`)."""
    value = [1e-05, 1e16, 2.5e-300, -0.0, 1e100, 0.1, 2**63, {"é": "\u2028", "a b": None}]
    params = {"plain": "x", "value": Jsonb(value), "maybe": None, "headers": None, "last": 1}
    row = conn.execute(JSON_STATEMENT.sql, JSON_STATEMENT.params(params)).fetchone()
    assert row is not None
    assert joined(row, JSON_FIELDS) == (
        '{"plain":"x","value":[0.00001,10000000000000000,2.5e-300,0.0,'
        + "1"
        + "0" * 100
        + ',0.1,9223372036854775808,{"é":"\u2028","a b":null}],"last":1}'
    )


def test_a_field_list_that_cannot_open_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="first field"):
        json_object((JsonField("a", "a", "text", optional=True),), lambda name: bindparam(name))
    with pytest.raises(ValueError, match="plain JSON key"):
        json_object((JsonField('a"b', "a", "text"),), lambda name: bindparam(name))
    with pytest.raises(ValueError, match="json_parts"):
        json_object(JSON_FIELDS, lambda name: bindparam(name))
