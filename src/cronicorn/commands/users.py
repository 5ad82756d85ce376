"""`cronicorn users create|list|set-password|disable|enable`: accounts from the command line,
so an operator can bootstrap a server without a browser. Runs straight against the database
(embedded or DATABASE_URL) through the same service functions as the API."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.auth import service
from cronicorn.auth.errors import AuthError
from cronicorn.auth.passwords import random_password
from cronicorn.commands.common import friendly
from cronicorn.config import load_settings
from cronicorn.schemas.accounts import UserView
from cronicorn.serve import check_database, database
from cronicorn.services import accounts
from cronicorn.store.db import make_async_engine
from cronicorn.store.users import UserRow

T = TypeVar("T")

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


def run_db(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Open the database, run `work(engine)`, turn known failures into one line on stderr."""

    @friendly(AuthError)
    def inner() -> T:
        cfg = load_settings()
        with database(cfg) as url:
            check_database(url, cfg.db_connect_timeout_s)

            async def main() -> T:
                engine = make_async_engine(url, pool_size=1, max_overflow=0)
                try:
                    return await work(engine)
                finally:
                    await engine.dispose()

            return asyncio.run(main())

    return inner()


def now() -> datetime:
    return datetime.now(UTC)


def plain_json(view: BaseModel, fields: tuple[str, ...]) -> dict[str, Any]:
    """The CLI's `--json` of a view: the named fields under their camelCase names, times as
    Python writes them (`isoformat`, as this output always had)."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(view, name)
        alias = type(view).model_fields[name].alias or name
        out[alias] = value.isoformat() if isinstance(value, datetime) else value
    return out


USER_FIELDS = ("id", "email", "name", "is_admin", "disabled", "created_at")


@app.command("create")
def create(
    email: str = typer.Argument(..., help="The new user's email (their login)."),
    admin: bool = typer.Option(False, "--admin", help="Make the user an administrator."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: from email)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin instead of generating one."
    ),
    no_password: bool = typer.Option(
        False, "--no-password", help="No password (GitHub sign-in or API keys only)."
    ),
) -> None:
    """Create a user. Without --password-stdin a password is generated and printed once.

    Examples: `cronicorn users create me@example.com --admin`,
    `printf '%s' "$PW" | cronicorn users create me@example.com --password-stdin`
    """
    password: str | None = None
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif not no_password:
        password = random_password()

    async def work(engine: AsyncEngine) -> UserRow:
        async with engine.begin() as conn:
            return await service.create_user(
                conn, email=email, password=password, name=name, is_admin=admin
            )

    user = run_db(work)
    role = "administrator" if user.is_admin else "user"
    typer.echo(f"Created {role} {user.email} (id {user.id})", err=True)
    if password is not None and not password_stdin:
        typer.echo(f"Password (shown once): {password}")


@app.command("list")
def list_users(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every user."""

    async def work(engine: AsyncEngine) -> list[UserView]:
        async with engine.connect() as conn:
            return await accounts.list_users(conn)

    views = run_db(work)
    if as_json:
        typer.echo(json.dumps([plain_json(view, USER_FIELDS) for view in views], indent=2))
        return
    for view in views:
        flags = " ".join(
            f for f, on in (("admin", view.is_admin), ("disabled", view.disabled)) if on
        )
        typer.echo(f"{view.id}  {view.email}  {flags}".rstrip())


@app.command("set-password")
def set_password(
    email: str = typer.Argument(..., help="The user's email."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin instead of generating one."
    ),
) -> None:
    """Reset a user's password (e.g. a forgotten one) and sign out all their sessions; API
    keys keep working. Without --password-stdin a password is generated and printed once.

    Example: `cronicorn users set-password me@example.com`
    """
    password = sys.stdin.read().rstrip("\r\n") if password_stdin else random_password()

    async def work(engine: AsyncEngine) -> int:
        async with engine.begin() as conn:
            return await service.reset_password(conn, email, password, now())

    revoked = run_db(work)
    typer.echo(f"Password of {email} reset; {revoked} session(s) signed out", err=True)
    if not password_stdin:
        typer.echo(f"Password (shown once): {password}")


def _set_disabled(email: str, disabled: bool) -> UserView:
    async def work(engine: AsyncEngine) -> UserView:
        async with engine.begin() as conn:
            user = await service.user_by_email(conn, email)
            return await accounts.set_disabled(conn, user.id, disabled=disabled, now=now(), by=None)

    return run_db(work)


@app.command("disable")
def disable(email: str = typer.Argument(..., help="The user's email.")) -> None:
    """Disable a user: their sessions and API keys stop working at once."""
    user = _set_disabled(email, True)
    typer.echo(f"Disabled {user.email}")


@app.command("enable")
def enable(email: str = typer.Argument(..., help="The user's email.")) -> None:
    """Re-enable a disabled user (they sign in again; their API keys work again)."""
    user = _set_disabled(email, False)
    typer.echo(f"Enabled {user.email}")
