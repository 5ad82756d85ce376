"""The openai adapter against replies shaped the way a LiteLLM proxy (1.108) shapes them, as
recorded in front of the scripted server (bench/README.md, planner section): a 429 it has
given up retrying carries the provider's `Retry-After` only as `llm_provider-retry-after`,
and its replies add fields of its own. LiteLLM itself is not a dependency: these are its
bytes, replayed."""

from __future__ import annotations

from typing import Any

from cronicorn.planner.llm import OpenAIChat, assistant_message, retry_after
from cronicorn.planner.schemas import TOOLS
from planner.fake_llm import FakeModel, Reply, call, tools
from planner.planner_support import Sleeps, planner_config

MESSAGES = [{"role": "user", "content": "hi"}]


def litellm_429(seconds: str) -> Reply:
    """What the proxy answered after its own retries of an upstream 429 `Retry-After: 7`."""
    return Reply(
        status=429,
        body={
            "error": {
                "message": "litellm.RateLimitError: RateLimitError: OpenAIException - scripted 429",
                "type": "throttling_error",
                "param": None,
                "code": "429",
            }
        },
        headers={
            "llm_provider-retry-after": seconds,
            "llm_provider-server": "Python/3.11 aiohttp/3.14.5",
        },
    )


def litellm_tool_reply(*calls: dict[str, Any]) -> Reply:
    """A tool-call reply with the fields the proxy adds (and `content: null`)."""
    reply = tools(*calls, usage=(1234, 56))
    body = reply.body
    message = body["choices"][0]["message"]
    message.update(function_call=None, provider_specific_fields=None)
    for c in message["tool_calls"]:
        c["provider_specific_fields"] = None
    body["choices"][0]["provider_specific_fields"] = {}
    body["system_fingerprint"] = None
    body["usage"] |= {"completion_tokens_details": None, "prompt_tokens_details": None}
    return reply


async def test_a_litellm_429_waits_as_long_as_the_provider_asked(fake: FakeModel) -> None:
    sleeps = Sleeps()
    fake.add(litellm_429("7"), litellm_tool_reply(call("get_latest_response")))
    config = planner_config(fake)
    assert config.model is not None
    model = OpenAIChat(config.model, sleep=sleeps)
    try:
        done = await model.complete(MESSAGES, TOOLS, tool_choice="required")
    finally:
        await model.close()
    assert sleeps.waits == [7.0]
    assert [c.name for c in done.tool_calls] == ["get_latest_response"]
    assert (done.prompt_tokens, done.completion_tokens) == (1234, 56)
    assert assistant_message(done)["content"] == ""


def test_a_plain_retry_after_wins_over_the_forwarded_one() -> None:
    both = {"retry-after": "2", "llm_provider-retry-after": "7"}
    assert retry_after(both) == 2.0
    assert retry_after({"llm_provider-retry-after-ms": "1500"}) == 1.5
    assert retry_after({"llm_provider-server": "x"}) is None
