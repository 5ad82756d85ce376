"""The first administrator, created on `migrate` / `up` and never overwritten."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.auth.errors import InvalidInput
from cronicorn.auth.passwords import random_password
from cronicorn.auth.service import create_user
from cronicorn.config import ConfigError, Settings
from cronicorn.store import users

DEV_ADMIN_EMAIL = "admin@example.com"


@dataclass(frozen=True)
class AdminOutcome:
    email: str | None
    created: bool
    generated_password: str | None = None


async def ensure_admin(engine: AsyncEngine, settings: Settings) -> AdminOutcome:
    """Create the configured admin if missing; in embedded dev mode with nothing configured
    and no users at all, create admin@example.com with a random password shown once."""
    email = settings.admin_user_email
    password = (
        settings.admin_user_password.get_secret_value() if settings.admin_user_password else None
    )
    generated = None
    async with engine.begin() as conn:
        if email is None:
            if not (settings.embedded and settings.is_dev) or await users.count(conn) > 0:
                return AdminOutcome(email=None, created=False)
            email, generated = DEV_ADMIN_EMAIL, random_password()
            password = generated
        if await users.get_by_email(conn, email) is not None:
            return AdminOutcome(email=email, created=False)
        try:
            await create_user(
                conn, email=email, password=password, name=settings.admin_user_name, is_admin=True
            )
        except InvalidInput as exc:
            variable = "ADMIN_USER_PASSWORD" if exc.field == "password" else "ADMIN_USER_EMAIL"
            raise ConfigError(f"invalid {variable}: {exc}") from None
    return AdminOutcome(email=email, created=True, generated_password=generated)
