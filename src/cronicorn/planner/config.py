"""The planner's settings, derived once from `Settings` (like `scheduler.role.scheduler_config`)."""

from __future__ import annotations

from dataclasses import dataclass

from cronicorn.config import Settings

MIN_NEXT_ANALYSIS_MS = 300_000
MAX_NEXT_ANALYSIS_MS = 86_400_000


@dataclass(frozen=True)
class ModelConfig:
    """How to reach the chat-completions API. `api_key` is never logged."""

    base_url: str | None
    api_key: str
    model: str
    temperature: float | None = 0.2
    max_tokens: int = 2048
    timeout_s: float = 60.0
    max_retries: int = 3
    max_retry_delay_s: float = 30.0


@dataclass(frozen=True)
class PlannerConfig:
    model: ModelConfig | None
    """None: no model configured, the planner idles."""
    interval_s: float = 300.0
    lookback_s: float = 300.0
    concurrency: int = 4
    max_steps: int = 15
    session_token_budget: int = 40_000
    max_tool_calls: int = 30
    lease_s: float = 600.0
    retention_days: float = 30.0
    retention_every_s: float = 60.0
    ai_tokens_per_month: int = 0
    shutdown_timeout_s: float = 10.0
    min_interval_floor_ms: int = 0
    """QUOTA_MIN_INTERVAL_MS: no hint goes below it."""

    @property
    def enabled(self) -> bool:
        return self.model is not None


def planner_config(settings: Settings) -> PlannerConfig:
    model = None
    if settings.ai_configured:
        key = settings.openai_api_key
        model = ModelConfig(
            base_url=settings.openai_base_url,
            # Local servers (Ollama, llama.cpp) need no key, but the SDK wants a string.
            api_key=key.get_secret_value() if key is not None else "not-needed",
            model=settings.ai_model,
            temperature=settings.ai_temperature,
            max_tokens=settings.ai_max_tokens,
            timeout_s=settings.ai_request_timeout_s,
        )
    return PlannerConfig(
        model=model,
        interval_s=settings.ai_analysis_interval_ms / 1000,
        lookback_s=settings.ai_lookback_minutes * 60,
        concurrency=settings.ai_concurrency,
        max_steps=settings.ai_max_steps,
        session_token_budget=settings.ai_session_token_budget,
        retention_days=settings.ai_session_retention_days,
        ai_tokens_per_month=settings.quota_ai_tokens_per_month,
        # Within the process's own SHUTDOWN_TIMEOUT_S, so abandoned sessions get recorded.
        shutdown_timeout_s=settings.shutdown_timeout_s * 0.6,
        min_interval_floor_ms=settings.quota_min_interval_ms,
    )
