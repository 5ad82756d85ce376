from __future__ import annotations

from cronicorn.errors import first_line


def test_first_line_of_a_multiline_message() -> None:
    assert first_line(ValueError("  boom\nDETAIL: more\n")) == "boom"


def test_an_empty_message_gives_the_type_name_instead_of_failing() -> None:
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(OSError("   ")) == "OSError"
