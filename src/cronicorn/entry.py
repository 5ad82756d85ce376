"""The `cronicorn` executable: `cronicorn health` is answered by the standard library alone
(healthcheck.py: containers run it every few seconds), everything else by the Typer CLI."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "health":
        from cronicorn.healthcheck import main as health

        sys.exit(health(sys.argv[2:]))
    from cronicorn.cli import main as cli

    cli()
