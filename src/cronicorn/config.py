"""Settings: one pydantic-settings class read from the environment and `.env`.

Fail fast: an invalid value stops the process at start with one line naming the variable
(`ConfigError`), never later in a request. Secrets are `SecretStr` so they never appear in
logs or reprs.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cronicorn.domain import Quotas

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEV_ENVIRONMENTS = {"development", "dev", "test"}


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable and the fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    cronicorn_home: Path = Field(default=Path(".cronicorn"), alias="CRONICORN_HOME")
    host: str = Field(default="0.0.0.0", alias="HOST")
    port: int = Field(default=3333, ge=1, le=65535, alias="PORT")
    environment: str = Field(default="development", alias="CRONICORN_ENV")
    auth_secret: SecretStr | None = Field(default=None, alias="AUTH_SECRET")
    admin_user_email: str | None = Field(default=None, alias="ADMIN_USER_EMAIL")
    admin_user_password: SecretStr | None = Field(default=None, alias="ADMIN_USER_PASSWORD")
    admin_user_name: str = Field(default="Admin", alias="ADMIN_USER_NAME")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", alias="LOG_LEVEL"
    )
    log_format: Literal["json", "console"] = Field(default="json", alias="LOG_FORMAT")
    db_pool_size: int = Field(default=20, ge=1, le=500, alias="DB_POOL_SIZE")
    db_pool_max_overflow: int = Field(default=10, ge=0, le=500, alias="DB_POOL_MAX_OVERFLOW")
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=120, alias="DB_CONNECT_TIMEOUT_S")
    api_workers: int = Field(default=1, ge=1, le=64, alias="API_WORKERS")
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600, alias="SHUTDOWN_TIMEOUT_S")
    allow_networks_raw: str = Field(default="", alias="CRONICORN_ALLOW_NETWORKS")
    web_url: str = Field(default="http://localhost:3333", alias="WEB_URL")
    signing_key_grace_hours: float = Field(
        default=24, ge=0, le=24 * 90, alias="SIGNING_KEY_GRACE_HOURS"
    )
    scheduler_concurrency: int = Field(default=200, ge=1, le=10_000, alias="SCHEDULER_CONCURRENCY")
    scheduler_batch_size: int = Field(default=100, ge=1, le=5_000, alias="SCHEDULER_BATCH_SIZE")
    # Only a hung scheduler waits for its leases to expire (a dead one's are taken over at
    # once, see scheduler/liveness.py); renewed every third of it, so 15 s survives two
    # missed heartbeats, e.g. a 5 s connect timeout while PostgreSQL restarts.
    scheduler_lease_s: float = Field(default=15.0, ge=1, le=3_600, alias="SCHEDULER_LEASE_S")
    scheduler_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, alias="SCHEDULER_METRICS_PORT"
    )
    # GET /health and /livez of a process serving no API (scheduler, planner): role_health.py
    health_port: int | None = Field(default=None, ge=1, le=65535, alias="HEALTH_PORT")
    run_retention_days: float = Field(default=30, ge=0, le=36_500, alias="RUN_RETENTION_DAYS")
    run_retention_per_endpoint: int = Field(
        default=1000, ge=0, le=10_000_000, alias="RUN_RETENTION_PER_ENDPOINT"
    )
    # accounts and limits
    allow_signup: bool = Field(default=False, alias="ALLOW_SIGNUP")
    session_ttl_days: float = Field(default=30, gt=0, le=3650, alias="SESSION_TTL_DAYS")
    github_client_id: str | None = Field(default=None, alias="GITHUB_CLIENT_ID")
    github_client_secret: SecretStr | None = Field(default=None, alias="GITHUB_CLIENT_SECRET")
    github_oauth_url: str = Field(default="https://github.com", alias="GITHUB_OAUTH_URL")
    github_api_url: str = Field(default="https://api.github.com", alias="GITHUB_API_URL")
    github_allowed_users_raw: str = Field(default="", alias="GITHUB_ALLOWED_USERS")
    rate_limit_read_rpm: int = Field(default=600, ge=1, le=1_000_000, alias="RATE_LIMIT_READ_RPM")
    rate_limit_write_rpm: int = Field(default=120, ge=1, le=1_000_000, alias="RATE_LIMIT_WRITE_RPM")
    quota_max_endpoints: int = Field(default=0, ge=0, le=10_000_000, alias="QUOTA_MAX_ENDPOINTS")
    quota_min_interval_ms: int = Field(
        default=0, ge=0, le=366 * 86_400_000, alias="QUOTA_MIN_INTERVAL_MS"
    )
    quota_runs_per_month: int = Field(
        default=0, ge=0, le=10_000_000_000, alias="QUOTA_RUNS_PER_MONTH"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, alias="MAX_BODY_BYTES")
    # AI planner (cronicorn.planner): idle unless OPENAI_API_KEY or OPENAI_BASE_URL is set
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    ai_model: str = Field(default="gpt-4o-mini", min_length=1, alias="AI_MODEL")
    ai_temperature: float | None = Field(default=0.2, ge=0, le=2, alias="AI_TEMPERATURE")
    ai_max_tokens: int = Field(default=2048, ge=64, le=200_000, alias="AI_MAX_TOKENS")
    ai_request_timeout_s: float = Field(default=60, gt=0, le=600, alias="AI_REQUEST_TIMEOUT_S")
    ai_analysis_interval_ms: int = Field(
        default=300_000, ge=100, le=86_400_000, alias="AI_ANALYSIS_INTERVAL_MS"
    )
    ai_lookback_minutes: float = Field(default=5, gt=0, le=10_080, alias="AI_LOOKBACK_MINUTES")
    ai_concurrency: int = Field(default=4, ge=1, le=256, alias="AI_CONCURRENCY")
    ai_max_steps: int = Field(default=15, ge=2, le=100, alias="AI_MAX_STEPS")
    ai_session_token_budget: int = Field(
        default=40_000, ge=1_000, le=10_000_000, alias="AI_SESSION_TOKEN_BUDGET"
    )
    ai_session_retention_days: float = Field(
        default=30, ge=0, le=36_500, alias="AI_SESSION_RETENTION_DAYS"
    )
    quota_ai_tokens_per_month: int = Field(
        default=0, ge=0, le=10_000_000_000_000, alias="QUOTA_AI_TOKENS_PER_MONTH"
    )
    # notifications and the audit log (cronicorn.notify, docs/notifications.md, docs/audit.md)
    notify_channel_gap_s: float = Field(default=10, ge=0, le=86_400, alias="NOTIFY_CHANNEL_GAP_S")
    notify_retry_base_s: float = Field(default=30, gt=0, le=86_400, alias="NOTIFY_RETRY_BASE_S")
    notify_max_attempts: int = Field(default=6, ge=1, le=100, alias="NOTIFY_MAX_ATTEMPTS")
    notify_timeout_s: float = Field(default=10, gt=0, le=300, alias="NOTIFY_TIMEOUT_S")
    notify_poll_s: float = Field(default=1, gt=0, le=60, alias="NOTIFY_POLL_S")
    notify_concurrency: int = Field(default=4, ge=1, le=100, alias="NOTIFY_CONCURRENCY")
    notify_retention_days: float = Field(default=30, ge=0, le=36_500, alias="NOTIFY_RETENTION_DAYS")
    audit_retention_days: float = Field(default=365, ge=0, le=36_500, alias="AUDIT_RETENTION_DAYS")
    # backups (cronicorn.backup)
    backup_schedule: str = Field(default="0 2 * * *", alias="BACKUP_SCHEDULE")
    backup_verify: bool = Field(default=True, alias="BACKUP_VERIFY")
    backup_verify_scratch: Literal["auto", "server", "embedded"] = Field(
        default="auto", alias="BACKUP_VERIFY_SCRATCH"
    )
    backup_keep_daily: int = Field(default=30, ge=0, le=100_000, alias="BACKUP_KEEP_DAILY")
    backup_keep_weekly: int = Field(default=52, ge=0, le=100_000, alias="BACKUP_KEEP_WEEKLY")
    backup_keep_monthly: int = Field(default=12, ge=0, le=100_000, alias="BACKUP_KEEP_MONTHLY")
    backup_passphrase: SecretStr | None = Field(default=None, alias="BACKUP_PASSPHRASE")
    backup_dir_raw: Path | None = Field(default=None, alias="BACKUP_DIR")
    backup_target: str | None = Field(default=None, alias="BACKUP_TARGET")
    s3_endpoint_url: str | None = Field(default=None, alias="S3_ENDPOINT_URL")
    aws_access_key_id: str | None = Field(default=None, alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(default=None, alias="AWS_SECRET_ACCESS_KEY")
    aws_region: str | None = Field(default=None, alias="AWS_REGION")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("must start with postgresql:// (e.g. postgresql://user:pw@host/db)")
        return value

    @field_validator(
        "backup_passphrase",
        "backup_dir_raw",
        "backup_target",
        "s3_endpoint_url",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_region",
        "openai_base_url",
        "openai_api_key",
        "ai_temperature",
        "scheduler_metrics_port",
        "health_port",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("backup_schedule")
    @classmethod
    def _check_backup_schedule(cls, value: str) -> str:
        from cronicorn.domain.cron import validate_cron

        text = value.strip()
        if text:
            validate_cron(text)  # CronError is a ValueError: reported naming BACKUP_SCHEDULE
        return text

    @field_validator("backup_passphrase")
    @classmethod
    def _check_backup_passphrase(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 12:
            raise ValueError("must be at least 12 characters (it protects .env in backups)")
        return value

    @field_validator("backup_target")
    @classmethod
    def _check_backup_target(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("must name a bucket, e.g. s3://my-bucket/cronicorn")
        return value

    @field_validator("openai_base_url")
    @classmethod
    def _check_openai_base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (e.g. http://localhost:11434/v1)")
        return value

    @field_validator("allow_networks_raw")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @model_validator(mode="after")
    def _secret_outside_dev(self) -> Settings:
        if not self.is_dev and self.auth_secret is None:
            raise ValueError(
                "AUTH_SECRET is required when CRONICORN_ENV is not development "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.auth_secret is not None and len(self.auth_secret.get_secret_value()) < 32:
            raise ValueError("AUTH_SECRET must be at least 32 characters")
        return self

    @property
    def github_enabled(self) -> bool:
        secret = self.github_client_secret
        return bool(self.github_client_id) and bool(secret and secret.get_secret_value())

    @property
    def github_allowed_users(self) -> frozenset[str]:
        """GitHub logins allowed to sign in (lower case); empty means no allow-list."""
        parts = self.github_allowed_users_raw.replace(";", ",").split(",")
        return frozenset(part.strip().lower() for part in parts if part.strip())

    @property
    def backup_dir(self) -> Path:
        """Where backups are written: BACKUP_DIR, default CRONICORN_HOME/backups."""
        raw = self.backup_dir_raw if self.backup_dir_raw is not None else self.home / "backups"
        return raw.expanduser().resolve()

    @property
    def quotas(self) -> Quotas:
        return Quotas(
            max_endpoints=self.quota_max_endpoints,
            min_interval_ms=self.quota_min_interval_ms,
            runs_per_month=self.quota_runs_per_month,
        )

    @property
    def ai_configured(self) -> bool:
        """A model is configured: an API key, or a base URL (local servers need no key)."""
        key = self.openai_api_key
        return bool(key and key.get_secret_value()) or self.openai_base_url is not None

    @property
    def is_dev(self) -> bool:
        return self.environment.lower() in DEV_ENVIRONMENTS

    @property
    def embedded(self) -> bool:
        """No DATABASE_URL means the CLI runs its own PostgreSQL under CRONICORN_HOME."""
        return self.database_url is None

    @cached_property
    def allow_networks(self) -> tuple[IPNetwork, ...]:
        return _parse_networks(self.allow_networks_raw)

    @property
    def home(self) -> Path:
        return self.cronicorn_home.expanduser().resolve()

    def resolved_auth_secret(self) -> str:
        """AUTH_SECRET, or in development one generated once and kept under the home."""
        if self.auth_secret is not None:
            return self.auth_secret.get_secret_value()
        path = self.home / "auth_secret"
        if path.exists():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(value)
        return value


def _parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    items = [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as exc:
        raise ValueError(f"not a CIDR list (e.g. 10.0.0.0/8,192.168.1.0/24): {exc}") from exc


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    fields = Settings.model_fields
    lines = []
    for err in exc.errors():
        loc = err["loc"][0] if err["loc"] else ""
        field = fields.get(str(loc))
        name = field.alias if field is not None and field.alias else str(loc).upper()
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"invalid {name}: {message}" if name else message)
    return "; ".join(lines)
