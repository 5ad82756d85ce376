"""Helpers for turning exceptions into the one-line messages operators see."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty
    (`str(exc).splitlines()[0]` raises IndexError on an empty message)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
