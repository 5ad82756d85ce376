"""One condition language over an HTTP response, shared by assertions and rules.

A condition is JSON the user writes (`{"jsonPath": "$.queue.depth", "op": ">", "value":
100}`); `parse_condition` turns it into frozen dataclasses once, at create/edit time, and
raises `RuleError` naming the field path of the first problem. Evaluating is pure and cheap:
`holds(condition, response)` and, for assertions, `explain` (why it did not hold, in words a
user can act on).

Bodies are untrusted: a body that is not JSON, or was truncated, makes every JSON condition
false (never an exception), and regular expressions run on RE2 (linear time, no
backtracking) over at most `MAX_REGEX_TEXT` characters. JSON paths are parsed by the
`python-jsonpath` library (RFC 9535); singular paths of names and indices, by far the common
case, are then resolved by a direct walk instead of the library's generic query engine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import jsonpath
import re2
from jsonpath.selectors import IndexSelector, NameSelector

from cronicorn.domain.errors import RuleError

MAX_REGEX_TEXT = 65_536  # characters of the body a regular expression sees
MAX_PATTERN = 1_000  # characters of a regular expression
MAX_JSON_PATH = 500  # characters of a JSON path
MAX_NODES = 50  # conditions in one tree (all/any/not count too)
MAX_DEPTH = 6  # nesting of all/any/not
_RE2_MAX_MEM = 8 << 20  # bytes RE2 may use for one compiled program

OPS = ("==", "!=", ">", ">=", "<", "<=", "exists", "not exists")
_ORDERED = frozenset({">", ">=", "<", "<="})
_UNARY = frozenset({"exists", "not exists"})


class Response(NamedTuple):
    """What a condition sees of one HTTP answer. `body_json` counts only when `is_json`
    (a JSON `null` body is JSON; a text body, an empty one or a truncated one is not).
    A tuple, not a frozen dataclass: built once per run on the scheduler's hot path."""

    status_code: int | None = None
    duration_ms: int | None = None
    body_json: Any = None
    is_json: bool = False
    body_text: str | None = None


@dataclass(frozen=True, slots=True)
class StatusIn:
    """The status code lies in one of the inclusive ranges (`503` is `(503, 503)`)."""

    ranges: tuple[tuple[int, int], ...]
    spec: tuple[int | str, ...]  # as written, for messages and export


@dataclass(frozen=True, slots=True)
class Latency:
    """The call took more than `above` ms and/or less than `below` ms."""

    above: int | None = None
    below: int | None = None


@dataclass(frozen=True, slots=True)
class JsonPath:
    path: str
    op: str
    value: Any = None
    steps: tuple[str | int, ...] | None = field(default=None, compare=False, repr=False)
    compiled: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Regex:
    """The text body (any body, JSON included, as received) matches `pattern` somewhere."""

    pattern: str
    compiled: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition: TypeAlias = StatusIn | Latency | JsonPath | Regex | AllOf | AnyOf | Not


# --- parsing -------------------------------------------------------------------------------


def parse_condition(raw: Any, where: str = "when") -> Condition:
    """The condition `raw` (decoded JSON) describes; `where` names it in errors."""
    counter = [0]
    return _parse(raw, where, 0, counter)


def _parse(raw: Any, where: str, depth: int, counter: list[int]) -> Condition:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise RuleError(f"{where}: more than {MAX_NODES} conditions")
    if depth > MAX_DEPTH:
        raise RuleError(f"{where}: nested deeper than {MAX_DEPTH}")
    if not isinstance(raw, dict) or not raw:
        raise RuleError(f'{where}: expected an object such as {{"status": ["2xx"]}}')
    for key, parse in _PARSERS.items():
        if key in raw:
            return parse(raw, where, depth, counter)
    raise RuleError(f"{where}: expected one of {', '.join(_PARSERS)}; got {', '.join(raw)}")


def _only(raw: dict[str, Any], where: str, allowed: set[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise RuleError(f"{where}.{extra[0]}: unknown field")


def _parse_group(raw: dict[str, Any], where: str, depth: int, counter: list[int]) -> Condition:
    key = "all" if "all" in raw else "any"
    _only(raw, where, {key})
    items = raw[key]
    if not isinstance(items, list) or not items:
        raise RuleError(f"{where}.{key}: expected a non-empty list of conditions")
    parsed = tuple(
        _parse(item, f"{where}.{key}[{i}]", depth + 1, counter) for i, item in enumerate(items)
    )
    return AllOf(parsed) if key == "all" else AnyOf(parsed)


def _parse_not(raw: dict[str, Any], where: str, depth: int, counter: list[int]) -> Condition:
    _only(raw, where, {"not"})
    return Not(_parse(raw["not"], f"{where}.not", depth + 1, counter))


def _parse_status(raw: dict[str, Any], where: str, _d: int, _c: list[int]) -> Condition:
    _only(raw, where, {"status"})
    return parse_statuses(raw["status"], f"{where}.status")


def parse_statuses(raw: Any, where: str) -> StatusIn:
    """`[200, "2xx", "500-504"]`: codes, classes and inclusive ranges, at least one."""
    if isinstance(raw, (int, str)) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise RuleError(f'{where}: expected a non-empty list such as ["2xx", 503]')
    ranges = tuple(_status_range(item, f"{where}[{i}]") for i, item in enumerate(raw))
    return StatusIn(ranges, tuple(raw))


def _status_range(item: Any, where: str) -> tuple[int, int]:
    if isinstance(item, int) and not isinstance(item, bool):
        return _checked(item, item, where)
    if isinstance(item, str) and item.isascii():  # int() refuses digits such as "³"
        text = item.strip().lower()
        if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
            low = int(text[0]) * 100
            return low, low + 99
        low_s, dash, high_s = text.partition("-")
        if dash and low_s.strip().isdigit() and high_s.strip().isdigit():
            return _checked(int(low_s), int(high_s), where)
        if text.isdigit():
            return _checked(int(text), int(text), where)
    raise RuleError(f'{where}: expected a status code (503), class ("5xx") or range ("500-504")')


def _checked(low: int, high: int, where: str) -> tuple[int, int]:
    if not 100 <= low <= high <= 599:
        raise RuleError(f"{where}: status codes lie between 100 and 599, low to high")
    return low, high


def _parse_latency(raw: dict[str, Any], where: str, _d: int, _c: list[int]) -> Condition:
    _only(raw, where, {"latencyMs"})
    spec = raw["latencyMs"]
    where = f"{where}.latencyMs"
    if not isinstance(spec, dict) or not spec:
        raise RuleError(f'{where}: expected {{"above": ms}} and/or {{"below": ms}}')
    _only(spec, where, {"above", "below"})
    bounds: dict[str, int] = {}
    for key, value in spec.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 86_400_000:
            raise RuleError(f"{where}.{key}: expected milliseconds, 0 to 86400000")
        bounds[key] = value
    return Latency(above=bounds.get("above"), below=bounds.get("below"))


def _parse_json_path(raw: dict[str, Any], where: str, _d: int, _c: list[int]) -> Condition:
    _only(raw, where, {"jsonPath", "op", "value"})
    path = raw["jsonPath"]
    if not isinstance(path, str) or not path.startswith("$") or len(path) > MAX_JSON_PATH:
        raise RuleError(
            f"{where}.jsonPath: expected a JSON path starting with $"
            f" (at most {MAX_JSON_PATH} characters)"
        )
    try:
        compiled = jsonpath.compile(path)
    except Exception as exc:  # JSONPathError, and e.g. OverflowError on `1e999` in a filter
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RuleError(f"{where}.jsonPath: invalid JSON path: {reason}") from None
    if not isinstance(compiled, jsonpath.JSONPath):  # a union of paths (`$.a | $.b`)
        raise RuleError(f"{where}.jsonPath: one path only, no unions")
    op = raw.get("op", "exists")
    if op not in OPS:
        raise RuleError(f"{where}.op: expected one of {', '.join(OPS)}")
    if op in _UNARY:
        if "value" in raw:
            raise RuleError(f"{where}.value: '{op}' takes no value")
        value = None
    else:
        if "value" not in raw:
            raise RuleError(f"{where}.value: '{op}' needs a value")
        value = raw["value"]
        _check_value(value, op, f"{where}.value")
    return JsonPath(path, op, value, _steps(compiled), compiled)


def _check_value(value: Any, op: str, where: str) -> None:
    if op in _ORDERED and not (_is_number(value) or isinstance(value, str)):
        raise RuleError(f"{where}: '{op}' compares with a number or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleError(f"{where}: expected a finite number")


def _steps(compiled: Any) -> tuple[str | int, ...] | None:
    """Names and indices of a singular path (`$.a[0].b`), resolved without the query engine."""
    if not compiled.singular_query():
        return None
    steps: list[str | int] = []
    for segment in compiled.segments:
        selectors = segment.selectors
        if len(selectors) != 1:
            return None
        selector = selectors[0]
        if type(selector) is NameSelector:
            steps.append(selector.name)
        elif type(selector) is IndexSelector:
            steps.append(selector.index)
        else:
            return None
    return tuple(steps)


def _parse_regex(raw: dict[str, Any], where: str, _d: int, _c: list[int]) -> Condition:
    _only(raw, where, {"regex"})
    pattern = raw["regex"]
    where = f"{where}.regex"
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN:
        raise RuleError(f"{where}: expected a regular expression of 1 to {MAX_PATTERN} characters")
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options)
    except Exception as exc:  # re2.error, or a pattern that is not valid UTF-8 (surrogates)
        raise RuleError(
            f"{where}: not a usable regular expression"
            f" (RE2 syntax: no backreferences or lookaround): {_reason(exc)}"
        ) from None
    return Regex(pattern, compiled)


def _reason(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


_PARSERS = {
    "all": _parse_group,
    "any": _parse_group,
    "not": _parse_not,
    "status": _parse_status,
    "latencyMs": _parse_latency,
    "jsonPath": _parse_json_path,
    "regex": _parse_regex,
}


def condition_to_json(condition: Condition) -> dict[str, Any]:
    """The JSON form of `condition` (`parse_condition` of it gives it back)."""
    match condition:
        case StatusIn(spec=spec):
            return {"status": list(spec)}
        case Latency(above=above, below=below):
            bounds = {"above": above, "below": below}
            return {"latencyMs": {k: v for k, v in bounds.items() if v is not None}}
        case JsonPath(path=path, op=op, value=value):
            out: dict[str, Any] = {"jsonPath": path, "op": op}
            if op not in _UNARY:
                out["value"] = value
            return out
        case Regex(pattern=pattern):
            return {"regex": pattern}
        case AllOf(items=items):
            return {"all": [condition_to_json(c) for c in items]}
        case AnyOf(items=items):
            return {"any": [condition_to_json(c) for c in items]}
        case Not(item=item):
            return {"not": condition_to_json(item)}
    raise TypeError(condition)  # pragma: no cover


# --- evaluation ----------------------------------------------------------------------------


_MISSING: Any = object()


def holds(condition: Condition, response: Response) -> bool:
    """Whether `condition` is true of `response`. Never raises on any body. (A look-up on the
    condition's type: `match` with class patterns tries each case in turn, on the hot path.)"""
    check = _CHECKS.get(type(condition))
    return False if check is None else check(condition, response)


def _status_holds(condition: StatusIn, response: Response) -> bool:
    code = response.status_code
    return code is not None and any(low <= code <= high for low, high in condition.ranges)


def _latency_holds(condition: Latency, response: Response) -> bool:
    ms = response.duration_ms
    if ms is None:
        return False
    above, below = condition.above, condition.below
    return (above is None or ms > above) and (below is None or ms < below)


def _regex_holds(condition: Regex, response: Response) -> bool:
    return _matches(condition.compiled, response.body_text)


def _all_hold(condition: AllOf, response: Response) -> bool:
    return all(holds(c, response) for c in condition.items)


def _any_holds(condition: AnyOf, response: Response) -> bool:
    return any(holds(c, response) for c in condition.items)


def _not_holds(condition: Not, response: Response) -> bool:
    return not holds(condition.item, response)


def _matches(compiled: Any, text: str | None) -> bool:
    if text is None:
        return False
    try:
        return compiled.search(text[:MAX_REGEX_TEXT]) is not None
    except UnicodeError:  # lone surrogates: not text RE2 can read
        return False


def _json_holds(condition: JsonPath, response: Response) -> bool:
    if not response.is_json:
        return False
    found = _lookup(condition, response.body_json)
    if condition.op == "exists":
        return found is not _MISSING
    if condition.op == "not exists":
        return found is _MISSING
    return found is not _MISSING and compare(found, condition.op, condition.value)


def _lookup(condition: JsonPath, document: Any) -> Any:
    steps = condition.steps
    if steps is None:
        try:
            matches = condition.compiled.findall(document)
        except Exception:  # a filter the document's shape defeats: no match
            return _MISSING
        return matches[0] if matches else _MISSING
    node = document
    for step in steps:
        if isinstance(step, str):
            if not isinstance(node, dict) or step not in node:
                return _MISSING
            node = node[step]
        else:
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return _MISSING
            node = node[step]
    return node


_CHECKS: dict[type, Callable[[Any, Response], bool]] = {
    JsonPath: _json_holds,
    StatusIn: _status_holds,
    Latency: _latency_holds,
    Regex: _regex_holds,
    AllOf: _all_hold,
    AnyOf: _any_holds,
    Not: _not_holds,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(found: Any, op: str, expected: Any) -> bool:
    """JSON comparison: `true` is not `1`, numbers compare with numbers and strings with
    strings; any other ordered comparison is false."""
    if op == "==":
        return _json_equal(found, expected)
    if op == "!=":
        return not _json_equal(found, expected)
    if _is_number(found) and _is_number(expected):
        pass
    elif not (isinstance(found, str) and isinstance(expected, str)):
        return False
    if op == ">":
        return bool(found > expected)
    if op == ">=":
        return bool(found >= expected)
    if op == "<":
        return bool(found < expected)
    return bool(found <= expected)


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def explain(condition: Condition, response: Response) -> str:
    """Why `condition` does not hold of `response`, for the run's error (call it only when
    `holds` is false)."""
    match condition:
        case JsonPath(path=path, op=op, value=value):
            if not response.is_json:
                return f"response is not JSON, expected {path} {_expectation(op, value)}"
            found = _lookup(condition, response.body_json)
            if found is _MISSING:
                return f"{path} is missing, expected {_expectation(op, value)}"
            return f"{path} was {_show(found)}, expected {_expectation(op, value)}"
        case StatusIn(spec=spec):
            shown = ", ".join(str(s) for s in spec)
            return f"status {response.status_code}, expected {shown}"
        case Latency(above=above, below=below):
            bounds = [
                f"above {above} ms" if above is not None else "",
                f"below {below} ms" if below is not None else "",
            ]
            return (
                f"took {response.duration_ms} ms, expected {' and '.join(b for b in bounds if b)}"
            )
        case Regex(pattern=pattern):
            return f"body does not match /{pattern}/"
        case AllOf(items=items):
            return next(explain(c, response) for c in items if not holds(c, response))
        case AnyOf(items=items):
            return "none held: " + "; ".join(explain(c, response) for c in items)
        case Not(item=item):
            return f"expected not: {condition_to_json(item)}"
    return "condition failed"  # pragma: no cover


def describe(condition: Condition) -> str:
    """The condition in words for `preview` (`$.queue.depth > 100`, `status 5xx or 503`)."""
    return _describe(condition, top=True)


def _describe(condition: Condition, *, top: bool = False) -> str:
    match condition:
        case JsonPath(path=path, op=op, value=value):
            return f"{path} {op}" if op in _UNARY else f"{path} {op} {_show(value)}"
        case StatusIn(spec=spec):
            shown = ", ".join(str(s) for s in spec)
            return f"status {shown}" if len(spec) == 1 else f"status in {shown}"
        case Latency(above=above, below=below):
            bounds = [f"above {above} ms" if above is not None else ""]
            bounds.append(f"below {below} ms" if below is not None else "")
            return "latency " + " and ".join(b for b in bounds if b)
        case Regex(pattern=pattern):
            return f"body matches /{pattern}/"
        case AllOf(items=items) | AnyOf(items=items):
            joiner = " and " if isinstance(condition, AllOf) else " or "
            text = joiner.join(_describe(c) for c in items)
            return text if top or len(items) == 1 else f"({text})"
        case Not(item=item):
            return f"not ({_describe(item, top=True)})"
    return "a condition"  # pragma: no cover


def _expectation(op: str, value: Any) -> str:
    if op == "==":
        return _show(value)
    if op in _UNARY:
        return "to exist" if op == "exists" else "not to exist"
    return f"{op} {_show(value)}"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."
