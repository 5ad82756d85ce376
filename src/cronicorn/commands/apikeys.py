"""`cronicorn apikey create|list|revoke`: API keys from the command line. `create` prints only
the key on stdout, so `KEY=$(cronicorn apikey create --user me@example.com --name ci)` works."""

from __future__ import annotations

import json
from datetime import timedelta

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.auth import service
from cronicorn.commands.users import now, plain_json, run_db
from cronicorn.schemas.accounts import ApiKey, CreatedApiKey
from cronicorn.services import accounts
from cronicorn.store.api_keys import ApiKeyRow

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
KEY_FIELDS = ("id", "name", "prefix", "created_at", "last_used_at", "expires_at")


@app.command("create")
def create(
    user: str = typer.Option(..., "--user", help="Owner's email."),
    name: str = typer.Option(..., "--name", help="What the key is for (shown in lists)."),
    expires_days: float | None = typer.Option(
        None, "--expires-days", min=0.001, help="Expire after this many days (default never)."
    ),
) -> None:
    """Create an API key and print it (only the key, once) on stdout.

    Example: `KEY=$(cronicorn apikey create --user me@example.com --name ci)`, then
    `curl -H "x-api-key: $KEY" http://localhost:3333/api/jobs`
    """
    expires = timedelta(days=expires_days) if expires_days else None

    async def work(engine: AsyncEngine) -> CreatedApiKey:
        async with engine.begin() as conn:
            owner = await service.user_by_email(conn, user)
            return await accounts.create_api_key(
                conn, owner.id, name=name, now=now(), expires_in=expires
            )

    made = run_db(work)
    typer.echo(made.key)
    typer.echo(f"Created API key {made.id} ({made.prefix}…) for {user}", err=True)


@app.command("list")
def list_keys(
    user: str = typer.Option(..., "--user", help="Owner's email."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a user's API keys (prefixes only; keys are never stored)."""

    async def work(engine: AsyncEngine) -> list[ApiKey]:
        async with engine.connect() as conn:
            owner = await service.user_by_email(conn, user)
            return await accounts.list_api_keys(conn, owner.id)

    data = [plain_json(view, KEY_FIELDS) for view in run_db(work)]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for item in data:
        expiry = f"  expires {item['expiresAt']}" if item["expiresAt"] else ""
        typer.echo(f"{item['id']}  {item['prefix']}…  {item['name']}{expiry}")


@app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (from `apikey list`).")) -> None:
    """Revoke an API key: it stops working at once."""

    # Any user's key, by id: the operator's own operation, so straight to `auth.service`.
    async def work(engine: AsyncEngine) -> ApiKeyRow:
        async with engine.begin() as conn:
            return await service.revoke_api_key(conn, key_id, now(), user_id=None)

    row = run_db(work)
    typer.echo(f"Revoked API key {row.id} ({row.name})")
