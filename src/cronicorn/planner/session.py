"""One analysis session: prompt, the tool loop with step and token budgets, the outcome.

The session row is written when the analysis starts (outcome `running`) and completed at
the end, so a planner stopped by SIGTERM leaves an `abandoned` session, not a silent gap.
Hints are written by the tools as the model calls them. Model failures end the session as
`failed` with the reason; rejected tool calls go back to the model and are recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.ids import new_id
from cronicorn.logs import get_logger
from cronicorn.planner import metrics, prompt
from cronicorn.planner.config import PlannerConfig
from cronicorn.planner.errors import EndpointGone, ModelRefused, ModelUnavailable, ToolError
from cronicorn.planner.llm import ChatModel, Completion, Message, assistant_message
from cronicorn.planner.payload import dumps
from cronicorn.planner.schemas import FINAL_TOOL, TOOLS
from cronicorn.planner.tools import Toolbox, clamp_next_analysis
from cronicorn.store import planner as planner_store
from cronicorn.store.planner import Context, Seen

log = get_logger("cronicorn.planner")

NUDGE = (
    "Answer with tool calls only. Call submit_analysis when you are done "
    "(reasoning, confidence, next_analysis_in_ms)."
)
FALLBACK_NEXT_MS = 1_800_000
QUOTA_RETRY = timedelta(hours=1)
FAILED_RETRY = timedelta(minutes=15)
FORCE_FINAL: dict[str, Any] = {"type": "function", "function": {"name": FINAL_TOOL}}


@dataclass
class Transcript:
    """What the session stores: every call with its arguments, result or error."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated_steps: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def warn(self, code: str, message: str, **meta: Any) -> None:
        self.warnings.append({"code": code, "message": message, **({"meta": meta} if meta else {})})


@dataclass
class Result:
    session_id: str
    outcome: str
    seen: Seen | None
    tokens: int = 0


@dataclass
class Session:
    engine: AsyncEngine
    model: ChatModel
    config: PlannerConfig
    clock: Callable[[], datetime]

    async def run(self, endpoint_id: str) -> Result | None:
        """Analyse one leased endpoint. None when it vanished before the session began."""
        now = self.clock()
        async with self.engine.begin() as conn:
            ctx = await planner_store.context(conn, endpoint_id)
            if ctx is None or ctx.endpoint.archived_at is not None:
                return None
            recent = await planner_store.finished_runs(conn, endpoint_id, limit=prompt.RECENT_RUNS)
            last_status = recent[0]["status"] if recent else None
            session_id = new_id()
            if await self._over_quota(conn, ctx, now):
                await self._record_quota(conn, session_id, ctx, now)
                nxt = now + QUOTA_RETRY
                return Result(session_id, "quota_exceeded", self._seen(now, nxt, ctx, last_status))
            await planner_store.start_session(
                conn, session_id=session_id, endpoint=ctx.endpoint, model=self.model.name, now=now
            )
            data = prompt.PromptInput(
                ctx=ctx,
                siblings=await planner_store.siblings(conn, ctx.endpoint),
                recent=recent,
                health=await planner_store.health(conn, endpoint_id, now),
                last_session=await planner_store.last_session(conn, endpoint_id),
                now=now,
            )
        return await self._converse(session_id, ctx, data, last_status, now)

    async def _over_quota(self, conn: Any, ctx: Context, now: datetime) -> bool:
        quota = self.config.ai_tokens_per_month
        if quota <= 0:
            return False
        return await planner_store.tokens_this_month(conn, ctx.endpoint.user_id, now) >= quota

    async def _record_quota(self, conn: Any, session_id: str, ctx: Context, now: datetime) -> None:
        quota = self.config.ai_tokens_per_month
        await planner_store.start_session(
            conn,
            session_id=session_id,
            endpoint=ctx.endpoint,
            model=None,
            now=now,
            outcome="quota_exceeded",
        )
        await planner_store.finish_session(
            conn,
            session_id,
            {
                "error": f"AI token quota reached ({quota} tokens this month, "
                "QUOTA_AI_TOKENS_PER_MONTH): analysis paused until next month",
                "next_analysis_at": now + QUOTA_RETRY,
                "token_usage": 0,
            },
        )
        metrics.SESSIONS.labels("quota_exceeded").inc()

    def _seen(self, now: datetime, nxt: datetime, ctx: Context, status: str | None) -> Seen:
        return Seen(now, nxt, ctx.endpoint.failure_count, status)

    async def _converse(
        self,
        session_id: str,
        ctx: Context,
        data: prompt.PromptInput,
        status: str | None,
        now: datetime,
    ) -> Result:
        tag = prompt.new_tag()
        messages: list[Message] = [
            {"role": "system", "content": prompt.system_message(tag, self.config.max_steps)},
            {"role": "user", "content": prompt.user_message(data, tag)},
        ]
        box = Toolbox(
            self.engine,
            ctx.endpoint,
            session_id,
            self.clock,
            self.config.min_interval_floor_ms,
            next_floor_ms=int(self.config.interval_s * 1000),
        )
        log_ = Transcript()
        started = time.monotonic()
        error, outcome = None, None
        try:
            await self._loop(messages, box, log_)
        except (ModelUnavailable, ModelRefused) as exc:
            error, outcome = str(exc), "failed"
        except EndpointGone as exc:
            error, outcome = str(exc), "endpoint_gone"
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(session_id, log_, started))
            raise
        duration_ms = int((time.monotonic() - started) * 1000)
        outcome = outcome or _outcome(box)
        nxt = self._next_analysis(box, outcome, now)
        await self._finish(session_id, ctx, box, log_, outcome, error, duration_ms, nxt, now)
        return Result(session_id, outcome, self._seen(now, nxt, ctx, status), log_.tokens)

    async def _loop(self, messages: list[Message], box: Toolbox, log_: Transcript) -> None:
        cfg = self.config
        for step in range(cfg.max_steps):
            final = (
                step == cfg.max_steps - 1
                or log_.tokens >= cfg.session_token_budget
                or len(log_.calls) >= cfg.max_tool_calls
            )
            if log_.tokens >= cfg.session_token_budget * 1.5:
                log_.warn("token_budget", "Session token budget exhausted before submit_analysis")
                return
            completion = await self.model.complete(
                messages, TOOLS, tool_choice=FORCE_FINAL if final else "required"
            )
            self._count(completion, step, log_)
            if not completion.tool_calls:
                log_.warn(
                    "prose_reply",
                    "The model answered in prose instead of tool calls",
                    step=step,
                    text=completion.content[:300],
                )
                messages.append({"role": "assistant", "content": completion.content or ""})
                messages.append({"role": "user", "content": NUDGE})
                continue
            messages.append(assistant_message(completion))
            for call in completion.tool_calls:
                messages.append(await self._run_tool(box, call.id, call.name, call.arguments, log_))
            if box.submitted is not None:
                return
        log_.warn("step_budget", f"No submit_analysis within {cfg.max_steps} steps")

    def _count(self, completion: Completion, step: int, log_: Transcript) -> None:
        log_.prompt_tokens += completion.prompt_tokens
        log_.completion_tokens += completion.completion_tokens
        metrics.TOKENS.labels("prompt").inc(completion.prompt_tokens)
        metrics.TOKENS.labels("completion").inc(completion.completion_tokens)
        if completion.finish_reason == "length":
            log_.truncated_steps.append(step)

    async def _run_tool(
        self, box: Toolbox, call_id: str, name: str, arguments: str, log_: Transcript
    ) -> Message:
        metrics.TOOL_CALLS.labels(name if name in _KNOWN else "unknown").inc()
        entry: dict[str, Any] = {"tool": name, "args": _args_json(arguments)}
        if box.submitted is not None:
            entry["error"] = "submit_analysis was already called; the session is over"
        else:
            try:
                result, _ = await box.call(name, arguments)
                entry["result"] = result
            except ToolError as exc:
                entry["error"] = str(exc)
        if "error" in entry:
            entry["result"] = {"error": entry["error"]}  # the reference's shape, for its UI
            metrics.TOOL_ERRORS.labels(name if name in _KNOWN else "unknown").inc()
        log_.calls.append(entry)
        return {"role": "tool", "tool_call_id": call_id, "content": dumps(entry["result"])}

    def _next_analysis(self, box: Toolbox, outcome: str, now: datetime) -> datetime:
        if outcome == "failed":
            return now + FAILED_RETRY
        floor = int(self.config.interval_s * 1000)
        submitted = box.submitted
        wanted = clamp_next_analysis(submitted.next_analysis_in_ms, floor) if submitted else None
        return now + timedelta(milliseconds=wanted or FALLBACK_NEXT_MS)

    async def _finish(
        self,
        session_id: str,
        ctx: Context,
        box: Toolbox,
        log_: Transcript,
        outcome: str,
        error: str | None,
        duration_ms: int,
        nxt: datetime,
        now: datetime,
    ) -> None:
        if box.submitted is None and outcome not in ("failed", "endpoint_gone"):
            log_.warn("missing_final_tool", "The model did not call submit_analysis")
        if log_.truncated_steps:
            log_.warn(
                "output_truncated",
                f"Output token limit hit on {len(log_.truncated_steps)} step(s)",
                steps=log_.truncated_steps,
            )
        values = {
            "tool_calls": log_.calls,
            "reasoning": box.submitted.reasoning if box.submitted else None,
            "confidence": box.submitted.confidence if box.submitted else None,
            "prompt_tokens": log_.prompt_tokens,
            "completion_tokens": log_.completion_tokens,
            "token_usage": log_.tokens,
            "duration_ms": duration_ms,
            "next_analysis_at": nxt,
            "warnings": log_.warnings,
            "error": error,
            "outcome": outcome,
        }
        await _retrying(lambda: self._write(session_id, ctx, values, log_.tokens, now))
        metrics.SESSIONS.labels(outcome).inc()
        log.info(
            "ai_session",
            endpoint=ctx.endpoint.id,
            outcome=outcome,
            tokens=log_.tokens,
            calls=len(log_.calls),
            duration_ms=duration_ms,
        )

    async def _write(
        self, session_id: str, ctx: Context, values: dict[str, Any], tokens: int, now: datetime
    ) -> None:
        async with self.engine.begin() as conn:
            await planner_store.finish_session(conn, session_id, values)
            await planner_store.add_tokens(conn, ctx.endpoint.user_id, now, tokens)

    async def _abandon(self, session_id: str, log_: Transcript, started: float) -> None:
        values = {
            "tool_calls": log_.calls,
            "warnings": log_.warnings,
            "prompt_tokens": log_.prompt_tokens,
            "completion_tokens": log_.completion_tokens,
            "token_usage": log_.tokens,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "outcome": "abandoned",
            "error": "the planner stopped during the session",
        }
        try:
            async with self.engine.begin() as conn:
                await planner_store.finish_session(conn, session_id, values)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("ai_session_abandon_failed", error=str(exc)[:200])
        metrics.SESSIONS.labels("abandoned").inc()


_KNOWN = frozenset(t["function"]["name"] for t in TOOLS)


def _outcome(box: Toolbox) -> str:
    if any(a.mode == "auto" for a in box.actions):
        return "applied"
    if box.actions:
        return "suggested"
    return "no_change"


def _args_json(raw: str) -> Any:
    """The arguments as stored: parsed, or the raw text when they are not JSON that
    PostgreSQL can hold (NaN and Infinity parse in Python, not in jsonb)."""
    try:
        return json.loads(raw or "{}", parse_constant=_no_constant)
    except ValueError:
        return {"_raw": raw[:2000]}


def _no_constant(name: str) -> Any:
    raise ValueError(name)


async def _retrying(write: Callable[[], Any], attempts: int = 4) -> None:
    """The session's last write survives a database restart of a few seconds."""
    for attempt in range(attempts):
        try:
            await write()
            return
        except (SQLAlchemyError, OSError) as exc:
            if attempt == attempts - 1:
                log.error("ai_session_write_failed", error=str(exc)[:200])
                raise
            await asyncio.sleep(0.5 * 2**attempt)
