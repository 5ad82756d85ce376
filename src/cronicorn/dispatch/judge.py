"""Whether an answered call counts as a success: the endpoint's assertions over the result.

Shared by the scheduler and "run now" (both import `dispatch`, neither imports the other).
The dispatcher calls any 2xx a success; with assertions the verdict is theirs instead: a
304 may be expected, and a 200 whose `$.status` is "degraded" is a failure whose error says
so. Transport failures (no answer, a broken body, a timeout) stay failures whatever the
assertions say. Stored assertions are parsed once per distinct text (LRU-cached), so the
hot path costs one dictionary look-up plus the conditions themselves.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

from prometheus_client import Counter

from cronicorn.dispatch.models import HttpResult
from cronicorn.domain.conditions import Response
from cronicorn.domain.errors import RuleError
from cronicorn.domain.rules import Assertions, failed_assertion, parse_assertions

ASSERTION_FAILURES = Counter(
    "cronicorn_assertion_failures_total",
    "Answered calls that the endpoint's assertions turned into failures.",
)


@lru_cache(maxsize=4096)
def assertions_from_text(text: str) -> Assertions | str:
    """Stored assertions (jsonb as text), or why they are unusable (written around the API)."""
    try:
        return parse_assertions(json.loads(text))
    except (RuleError, ValueError) as exc:
        return f"invalid assertions: {exc}"


def response_of(result: HttpResult) -> Response:
    return Response(
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        body_json=result.response_json,
        is_json=result.response_json is not None,
        body_text=result.response_text,
    )


def answered(result: HttpResult) -> bool:
    """A complete HTTP answer arrived (any status), as opposed to a transport failure."""
    if result.ok:
        return True
    code = result.status_code
    return code is not None and (result.error_message or "").startswith(f"HTTP {code}")


def judge(result: HttpResult, assertions_text: str | None) -> HttpResult:
    """`result` with the assertions' verdict (unchanged without assertions)."""
    if assertions_text is None or not answered(result):
        return result
    assertions = assertions_from_text(assertions_text)
    if isinstance(assertions, str):
        ASSERTION_FAILURES.inc()
        return replace(result, status="failed", error_message=assertions)
    error = failed_assertion(assertions, response_of(result))
    if error is None:
        return result if result.ok else replace(result, status="success", error_message=None)
    ASSERTION_FAILURES.inc()
    return replace(result, status="failed", error_message=error)
