"""`cronicorn scheduler` raises the cyclic collector's first threshold (scheduler/role.py):
at Python's default the bursts of each claim batch set off dozens of collections a second."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cronicorn.scheduler.role import GEN0_THRESHOLD, collect_less


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


@pytest.mark.usefixtures("thresholds")
def test_raises_the_first_threshold_only() -> None:
    gc.set_threshold(700, 10, 10)
    collect_less()
    assert gc.get_threshold() == (GEN0_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("thresholds")
def test_never_lowers_a_higher_threshold() -> None:
    gc.set_threshold(GEN0_THRESHOLD * 5, 3, 7)
    collect_less()
    assert gc.get_threshold() == (GEN0_THRESHOLD * 5, 3, 7)
