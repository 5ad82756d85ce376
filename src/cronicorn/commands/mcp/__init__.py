"""`cronicorn mcp`: the MCP server on stdio for desktop agents (Claude Desktop, Cursor, …).

A thin bridge to a running Cronicorn's `/mcp` (`bridge.py`, `device.py`); the SDK is imported
only when the command runs, so other commands start as fast as before.
"""

from __future__ import annotations

import typer

from cronicorn.commands.common import EXIT_CONFIG, fail


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)


def mcp(
    api_url: str = typer.Option(
        None,
        "--api-url",
        envvar="CRONICORN_API_URL",
        help="The Cronicorn server, with or without /api (default http://localhost:3333/api).",
        show_default=False,
    ),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar="CRONICORN_API_KEY",
        help="An API key; without one, sign in with the device flow (token kept in "
        "~/.cronicorn/credentials.json).",
        show_default=False,
    ),
) -> None:
    """Serve MCP on stdin/stdout, relayed to the server's /mcp as you."""
    from cronicorn.commands.mcp.bridge import BridgeConfig, BridgeError, run

    config = BridgeConfig.from_env()
    config = config.with_overrides(api_url=api_url, api_key=api_key)
    if not config.api.startswith(("http://", "https://")):
        fail(
            f"CRONICORN_API_URL must start with http:// or https:// (got {config.api!r})",
            EXIT_CONFIG,
        )
    try:
        run(config)
    except BridgeError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
