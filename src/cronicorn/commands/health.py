"""`cronicorn health [ROLE]` as a Typer command, for `cronicorn --help` and callers of the
Typer app; the executable answers it without loading the CLI (entry.py -> healthcheck.py).

The health check of containers and units: the image has no curl or wget, and a check must
test the role (API health, or a scheduler's own probe on HEALTH_PORT), never merely that a
process exists. Exit 0 when healthy, 1 when it answers unhealthy or not at all.
"""

from __future__ import annotations

from enum import StrEnum

import typer

from cronicorn.healthcheck import check


class Role(StrEnum):
    auto = "auto"
    api = "api"
    scheduler = "scheduler"
    planner = "planner"


def register(app: typer.Typer) -> None:
    @app.command()
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
        status = check(role.value, port, url, timeout)
        if status:
            raise typer.Exit(status)
