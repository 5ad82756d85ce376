"""Sub-commands whose code loads on first use.

A CLI start that imported every command module cost ~2 s of CPU (SQLAlchemy, aiohttp, the
import/export schemas, the backup machinery...): `cronicorn users create` paid for `export`.
The top-level group knows these commands by name and imports a module only when its command
runs (or when `--help` lists them all).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:  # Typer vendors its own click; its group methods take these types
    from typer._click.core import Command, Context

# name -> (module, attribute): a Typer app (a command group), a `register(app)` function that
# adds commands of that name, or a plain command function.
LAZY: dict[str, tuple[str, str]] = {
    "export": ("cronicorn.commands.transfer", "register"),
    "import": ("cronicorn.commands.transfer", "register"),
    "health": ("cronicorn.commands.health", "register"),
    "docs": ("cronicorn.commands.docs", "register"),
    "mcp": ("cronicorn.commands.mcp", "register"),
    "audit": ("cronicorn.commands.audit", "audit"),
    "users": ("cronicorn.commands.users", "app"),
    "apikey": ("cronicorn.commands.apikeys", "app"),
    "backup": ("cronicorn.commands.backup", "app"),
}


def load(name: str) -> Command:
    """The click command `name` of `LAZY`, its module imported now."""
    module, attribute = LAZY[name]
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        group = typer.main.get_group(found)
        group.name = name  # as `add_typer(app, name=...)` would (help lists it by name)
        return group
    holder = typer.Typer()
    if attribute == "register":
        found(holder)
    else:
        holder.command(name)(found)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """The `cronicorn` group: its own commands, then those of `LAZY`, loaded when asked for."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *LAZY]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in LAZY:
            return load(cmd_name)
        return super().get_command(ctx, cmd_name)
