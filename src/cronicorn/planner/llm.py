"""The model as a port: one chat-completions call with tools, and the adapter on the `openai`
SDK that speaks to OpenAI, Ollama, vLLM, llama.cpp and LiteLLM alike.

The SDK's own retries are off: this adapter retries 429, 5xx, timeouts and dropped
connections itself, with exponential backoff that honours `Retry-After`, so the waits are
bounded, counted in metrics and can be tested. Assistant turns that carry tool calls are sent
with `content: ""`, never `null` (llama.cpp-based servers answer 500 to `null`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import openai
from openai.types.chat import ChatCompletion

from cronicorn.planner import metrics
from cronicorn.planner.config import ModelConfig
from cronicorn.planner.errors import ModelRefused, ModelUnavailable

Message = dict[str, Any]
ToolChoice = str | dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """Raw JSON text as the model wrote it (it may be invalid: the caller checks)."""


@dataclass(frozen=True)
class Completion:
    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatModel(Protocol):
    """One step of a tool-using conversation."""

    @property
    def name(self) -> str: ...

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        tool_choice: ToolChoice,
    ) -> Completion: ...


def assistant_message(completion: Completion) -> Message:
    """The assistant turn to send back: `content` is a string even with tool calls."""
    message: Message = {"role": "assistant", "content": completion.content or ""}
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ]
    return message


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class OpenAIChat:
    """`ChatModel` on `openai.AsyncOpenAI(...).chat.completions.create`."""

    config: ModelConfig
    sleep: Sleep = asyncio.sleep
    _client: openai.AsyncOpenAI = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=self.config.api_key,
            base_url=self.config.base_url,
            timeout=self.config.timeout_s,
            max_retries=0,
        )

    @property
    def name(self) -> str:
        return self.config.model

    async def close(self) -> None:
        await self._client.close()

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        tool_choice: ToolChoice,
    ) -> Completion:
        attempt = 0
        while True:
            try:
                return await self._once(messages, tools, tool_choice)
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                error: Exception = exc
                delay = None
                reason = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection"
            except (openai.APIResponseValidationError, ValueError) as exc:
                # A cut or malformed response body (a proxy dropped the connection mid-way).
                error, delay, reason = exc, None, "malformed"
            except openai.APIStatusError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    raise ModelRefused(_describe(exc)) from None
                error, delay, reason = exc, retry_after(exc.response.headers), str(exc.status_code)
            attempt += 1
            if attempt > self.config.max_retries:
                raise ModelUnavailable(_describe(error)) from None
            metrics.MODEL_RETRIES.labels(reason).inc()
            await self.sleep(self._backoff(attempt, delay))

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.config.max_retry_delay_s)
        base: float = min(0.5 * 2.0 ** (attempt - 1), self.config.max_retry_delay_s)
        return base * (0.5 + random.random() / 2)

    async def _once(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], tool_choice: ToolChoice
    ) -> Completion:
        extra: dict[str, Any] = {}
        if self.config.temperature is not None:
            extra["temperature"] = self.config.temperature
        started = time.monotonic()
        create: Any = self._client.chat.completions.create  # messages/tools are plain dicts
        try:
            response: ChatCompletion = await create(
                model=self.config.model,
                messages=list(messages),
                tools=list(tools),
                tool_choice=tool_choice,
                max_tokens=self.config.max_tokens,
                **extra,
            )
        finally:
            metrics.MODEL_LATENCY.observe(time.monotonic() - started)
        if not response.choices:
            raise ModelUnavailable("the model answered without a choice")
        choice = response.choices[0]
        calls = tuple(
            ToolCall(id=c.id or f"call_{i}", name=c.function.name, arguments=c.function.arguments)
            for i, c in enumerate(choice.message.tool_calls or ())
            if c.type == "function"
        )
        usage = response.usage
        return Completion(
            content=choice.message.content or "",
            tool_calls=calls,
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )


# A LiteLLM proxy that gives up on a 429 sends the provider's headers back renamed
# `llm_provider-<name>`, without a `Retry-After` of its own.
_PREFIXES = ("", "llm_provider-")


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), as
    sent or as a LiteLLM proxy forwards them."""
    for prefix in _PREFIXES:
        raw_ms = headers.get(f"{prefix}retry-after-ms")
        if raw_ms:
            try:
                return float(str(raw_ms)) / 1000
            except ValueError:
                pass
        raw = headers.get(f"{prefix}retry-after")
        if raw:
            return _seconds(str(raw))
    return None


def _seconds(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _describe(exc: Exception) -> str:
    """One line, never the request (which may carry the key in a header)."""
    if isinstance(exc, openai.APIStatusError):
        return f"model API answered {exc.status_code}: {str(exc.message)[:200]}"
    if isinstance(exc, openai.APITimeoutError):
        return "model API timed out"
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return "model API sent a malformed response"
    return f"model API unreachable: {type(exc).__name__}"
