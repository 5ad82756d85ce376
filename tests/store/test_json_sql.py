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
from sqlalchemy import BigInteger, Text, bindparam, cast, select
from sqlalchemy.dialects.postgresql import TIMESTAMP

from cronicorn.schemas.common import Absent, Out, UtcDatetime
from cronicorn.store.json_sql import JsonField, json_object
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


def test_a_field_list_that_cannot_open_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="first field"):
        json_object((JsonField("a", "a", "text", optional=True),), lambda name: bindparam(name))
    with pytest.raises(ValueError, match="plain JSON key"):
        json_object((JsonField('a"b', "a", "text"),), lambda name: bindparam(name))
