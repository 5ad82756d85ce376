"""`cronicorn health [ROLE]`: ask a running process on this machine whether it is healthy.

The health check of containers and units: the image has no curl or wget, and a check must
test the role (API health, or a scheduler's own probe on HEALTH_PORT), never merely that a
process exists. Exit 0 when healthy, 1 when it answers unhealthy or not at all.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from enum import StrEnum
from typing import Any

import typer

from cronicorn.commands.common import err, friendly, out
from cronicorn.config import ConfigError, load_settings


class Role(StrEnum):
    auto = "auto"
    api = "api"
    scheduler = "scheduler"
    planner = "planner"


def _ports() -> tuple[int, int | None]:
    """PORT and HEALTH_PORT. A check must not fail on settings it does not use (a container
    without AUTH_SECRET, say): when the whole configuration is invalid, read just these two."""
    try:
        cfg = load_settings()
    except ConfigError:
        raw = os.environ.get("HEALTH_PORT", "").strip()
        return int(os.environ.get("PORT", "").strip() or 3333), int(raw) if raw else None
    return cfg.port, cfg.health_port


def _url(role: Role, port: int | None) -> str:
    api_port, health_port = _ports()
    if role is Role.api or (role is Role.auto and health_port is None and port is None):
        return f"http://127.0.0.1:{port or api_port}/api/health"
    chosen = port or health_port
    if chosen is None:
        raise typer.BadParameter(
            f"the {role.value} serves health only with HEALTH_PORT set (or pass --port)"
        )
    return f"http://127.0.0.1:{chosen}/health"


def _fetch(url: str, timeout: float) -> tuple[int, dict[str, Any] | None]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly()
    def health(
        role: Role = typer.Argument(
            Role.auto,
            help="api: PORT/api/health; scheduler or planner: HEALTH_PORT/health; "
            "auto: HEALTH_PORT when set, else the API.",
        ),
        port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port to ask."),
        url: str | None = typer.Option(None, "--url", help="Full URL to ask instead."),
        timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds to wait."),
    ) -> None:
        """Exit 0 if the process on this machine reports healthy (for HEALTHCHECK, probes)."""
        target = url or _url(role, port)
        status, body = _fetch(target, timeout)
        if status == 200:
            out.print(f"healthy: {target}", highlight=False)
            return
        if status == 0:
            err.print(f"unhealthy: nothing answers at {target}", highlight=False)
        else:
            detail = json.dumps(body, separators=(",", ":")) if body is not None else ""
            err.print(f"unhealthy: {target} answered {status} {detail}", highlight=False)
        raise typer.Exit(1)
