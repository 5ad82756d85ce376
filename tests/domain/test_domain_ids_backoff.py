"""UUIDv7 ids and the backoff table."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cronicorn.domain import BACKOFF_CAP, backoff_ms, backoff_multiplier, id_time, ids, new_id


def test_new_id_is_a_uuid7_string() -> None:
    value = new_id()
    parsed = uuid.UUID(value)
    assert len(value) == 36
    assert value == str(parsed)  # lowercase canonical form
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_ids_sort_in_creation_order_and_never_repeat() -> None:
    values = [new_id() for _ in range(20_000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)


def test_ids_are_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def work(slot: list[str]) -> None:
        slot.extend(new_id() for _ in range(3_000))

    threads = [threading.Thread(target=work, args=(slot,)) for slot in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [value for slot in results for value in slot]
    assert len(set(flat)) == len(flat)
    assert all(slot == sorted(slot) for slot in results)


def test_ids_stay_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([5_000_000_000_000_000, 4_000_000_000_000_000, 4_000_000_000_000_000])
    monkeypatch.setattr(ids, "_last_ms", -1)  # restored afterwards: later ids stay sane
    monkeypatch.setattr(ids, "_last_rand", 0)
    monkeypatch.setattr(ids, "_clock", lambda: next(clock))
    first, second, third = new_id(), new_id(), new_id()
    assert first < second < third
    assert id_time(first) == id_time(third)  # held at the latest millisecond seen


def test_id_time_reads_the_creation_instant() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=2)
    stamp = id_time(new_id())
    assert before <= stamp <= datetime.now(UTC) + timedelta(milliseconds=2)
    with pytest.raises(ValueError, match="UUIDv7"):
        id_time(str(uuid.uuid4()))


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, 60_000),
        (1, 120_000),
        (2, 240_000),
        (3, 480_000),
        (4, 960_000),
        (5, 1_920_000),
        (6, 1_920_000),
        (1_000, 1_920_000),
        (-3, 60_000),
    ],
)
def test_backoff_table(failures: int, expected: int) -> None:
    assert backoff_ms(60_000, failures) == expected


def test_backoff_cap_is_32x() -> None:
    assert BACKOFF_CAP == 5
    assert backoff_multiplier(BACKOFF_CAP) == backoff_multiplier(10**6) == 32
