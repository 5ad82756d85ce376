"""Numbers typed into the pages' text fields: anything that is not a finite number is the
field's error, never an exception out of the page (int() raises on "inf" and "nan")."""

from __future__ import annotations

import pytest

from cronicorn.web.forms import FieldError, int_or_none


@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "1e999", "1e308", "x", "1.0005"])
def test_non_numbers_and_non_whole_numbers_are_the_fields_error(raw: str) -> None:
    with pytest.raises(FieldError) as info:
        int_or_none({"timeout": raw}, "timeout", scale=1000)
    assert info.value.field == "timeout"


def test_numbers_are_scaled_and_blank_is_none() -> None:
    assert int_or_none({"timeout": " 2 "}, "timeout", scale=60_000) == 120_000
    assert int_or_none({"timeout": "0.5"}, "timeout", scale=1000) == 500
    assert int_or_none({"timeout": ""}, "timeout") is None
