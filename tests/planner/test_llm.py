"""The openai adapter against the scripted server: retries, Retry-After, timeouts, refusals."""

from __future__ import annotations

import pytest

from cronicorn.planner.errors import ModelRefused, ModelUnavailable
from cronicorn.planner.llm import OpenAIChat, retry_after
from cronicorn.planner.schemas import TOOLS
from planner.fake_llm import FakeModel, Reply, call, error, tools
from planner.planner_support import Sleeps, planner_config

MESSAGES = [{"role": "user", "content": "hi"}]


def adapter(fake: FakeModel, sleeps: Sleeps, **kw: float) -> OpenAIChat:
    config = planner_config(fake, **kw)
    assert config.model is not None
    return OpenAIChat(config.model, sleep=sleeps)


async def test_429_waits_as_long_as_retry_after_says(fake: FakeModel) -> None:
    sleeps = Sleeps()
    fake.add(error(429, retry_after="7"), error(503, retry_after="2"), tools(call("clear_hints")))
    model = adapter(fake, sleeps)
    try:
        done = await model.complete(MESSAGES, TOOLS, tool_choice="required")
    finally:
        await model.close()
    assert sleeps.waits == [7.0, 2.0]
    assert done.tool_calls[0].name == "clear_hints"
    assert done.prompt_tokens == 200
    assert len(fake.requests) == 3


async def test_5xx_without_retry_after_backs_off_exponentially_then_gives_up(
    fake: FakeModel,
) -> None:
    sleeps = Sleeps()
    fake.add(error(500), error(500), error(500))
    model = adapter(fake, sleeps)
    try:
        with pytest.raises(ModelUnavailable, match="500"):
            await model.complete(MESSAGES, TOOLS, tool_choice="required")
    finally:
        await model.close()
    assert len(sleeps.waits) == 2
    assert 0.25 <= sleeps.waits[0] <= 0.5
    assert 0.5 <= sleeps.waits[1] <= 1.0


async def test_retry_after_is_capped(fake: FakeModel) -> None:
    sleeps = Sleeps()
    fake.add(error(429, retry_after="3600"), tools(call("clear_hints")))
    model = adapter(fake, sleeps)
    try:
        await model.complete(MESSAGES, TOOLS, tool_choice="required")
    finally:
        await model.close()
    assert sleeps.waits == [30.0]


async def test_a_hanging_provider_times_out_and_is_retried(fake: FakeModel) -> None:
    sleeps = Sleeps()
    fake.add(Reply(delay_s=3, body={}), tools(call("clear_hints")))
    model = adapter(fake, sleeps, timeout_s=0.5)
    try:
        done = await model.complete(MESSAGES, TOOLS, tool_choice="required")
    finally:
        await model.close()
    assert done.tool_calls[0].name == "clear_hints"
    assert len(sleeps.waits) == 1


async def test_client_errors_are_refusals_not_retried(fake: FakeModel) -> None:
    sleeps = Sleeps()
    fake.add(error(400))
    model = adapter(fake, sleeps)
    try:
        with pytest.raises(ModelRefused, match="400"):
            await model.complete(MESSAGES, TOOLS, tool_choice="required")
    finally:
        await model.close()
    assert sleeps.waits == []


async def test_truncated_json_from_the_provider_is_unavailable_not_a_crash(
    fake: FakeModel,
) -> None:
    sleeps = Sleeps()
    fake.add(*[Reply(raw='{"id": "x", "choices": [{"mess') for _ in range(3)])
    model = adapter(fake, sleeps)
    try:
        with pytest.raises(ModelUnavailable, match="malformed"):
            await model.complete(MESSAGES, TOOLS, tool_choice="required")
    finally:
        await model.close()


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "5"}) == 5.0
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
