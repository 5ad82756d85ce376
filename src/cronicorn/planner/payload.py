"""Budgeted JSON: shrink a response body until its JSON text fits a character budget, and
stay valid JSON (the reference cut the text and handed the model a broken string, defect
15.2.4). Long strings are shortened, long lists and objects lose their tail, each with a
marker saying how much was left out; keys come first in the order the endpoint sent them.
"""

from __future__ import annotations

import json
from typing import Any

_STRING_CAPS = (2000, 500, 200, 80, 30)
_ITEM_CAPS = (50, 20, 10, 5, 2)
MAX_DEPTH = 8


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def fit(value: Any, budget: int) -> tuple[Any, bool]:
    """`value`, or a smaller valid-JSON version of it whose text is at most `budget` chars;
    and whether anything was left out."""
    if len(dumps(value)) <= budget:
        return value, False
    for string_cap, item_cap in zip(_STRING_CAPS, _ITEM_CAPS, strict=True):
        smaller = _shrink(value, string_cap, item_cap, 0)
        if len(dumps(smaller)) <= budget:
            return smaller, True
    text = dumps(value)
    room = max(budget - 60, 0)
    return {"truncatedPreview": text[:room], "originalChars": len(text)}, True


def _shrink(value: Any, string_cap: int, item_cap: int, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) <= string_cap:
            return value
        return f"{value[:string_cap]}…[+{len(value) - string_cap} chars]"
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        return f"…[nested {type(value).__name__} omitted]"
    if isinstance(value, list):
        items = [_shrink(v, string_cap, item_cap, depth + 1) for v in value[:item_cap]]
        if len(value) > item_cap:
            items.append(f"…[+{len(value) - item_cap} items]")
        return items
    if isinstance(value, dict):
        keys = list(value)
        out = {
            str(k)[:string_cap]: _shrink(value[k], string_cap, item_cap, depth + 1)
            for k in keys[:item_cap]
        }
        if len(keys) > item_cap:
            out["…"] = f"+{len(keys) - item_cap} keys omitted"
        return out
    return value
