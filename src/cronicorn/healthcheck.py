"""`cronicorn health [ROLE]` without loading Cronicorn: the check containers and units run
every few seconds (Docker HEALTHCHECK, compose, systemd), so it imports the standard library
only and answers in tens of milliseconds instead of the seconds the full CLI takes to import.
`cronicorn.entry` sends `cronicorn health …` here before anything else is imported.

ROLE api asks PORT's /api/health; scheduler and planner ask HEALTH_PORT's /health (their
role_health listener); auto (the default) asks HEALTH_PORT when it is set, else the API.
Ports come from the environment, then from ./.env, then the defaults. Exit 0 when the answer
is 200, 1 when it is anything else or nothing answers, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROLES = ("auto", "api", "scheduler", "planner")
USAGE_ERROR = 2


class UsageError(Exception):
    """The check cannot be made as asked (e.g. a scheduler check without HEALTH_PORT)."""


def _setting(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    dotenv = Path(".env")
    if dotenv.is_file():
        for line in dotenv.read_text(errors="replace").splitlines():
            key, sep, raw = line.partition("=")
            if sep and key.strip() == name and raw.strip().strip("'\""):
                return raw.strip().strip("'\"")
    return None


def _port(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise UsageError(f"{name}={value!r} is not a port (1-65535)")
    return int(value)


def target(role: str, port: int | None = None) -> str:
    """The URL to ask for `role`."""
    api_port = _port("PORT", _setting("PORT")) or 3333
    health_port = _port("HEALTH_PORT", _setting("HEALTH_PORT"))
    if role == "api" or (role == "auto" and health_port is None and port is None):
        return f"http://127.0.0.1:{port or api_port}/api/health"
    chosen = port or health_port
    if chosen is None:
        raise UsageError(f"the {role} serves health only with HEALTH_PORT set (or pass --port)")
    return f"http://127.0.0.1:{chosen}/health"


def ask(url: str, timeout: float) -> tuple[int, str]:
    """The status code (0: nothing answered) and the body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http only
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return 0, ""


def check(role: str, port: int | None, url: str | None, timeout: float) -> int:
    """Ask, print one line, return the exit status."""
    try:
        where = url or target(role, port)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    status, body = ask(where, timeout)
    if status == 200:
        print(f"healthy: {where}")
        return 0
    if status == 0:
        print(f"unhealthy: nothing answers at {where}", file=sys.stderr)
        return 1
    try:
        detail = json.dumps(json.loads(body), separators=(",", ":"))
    except ValueError:
        detail = body[:500]
    print(f"unhealthy: {where} answered {status} {detail}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="cronicorn health",
        description="Exit 0 if the process on this machine reports healthy "
        "(for HEALTHCHECK, probes).",
    )
    parser.add_argument("role", nargs="?", default="auto", choices=ROLES)
    parser.add_argument("--port", type=int, help="port to ask")
    parser.add_argument("--url", help="full URL to ask instead")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    args = parser.parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error("--port must be 1-65535")
    return check(args.role, args.port, args.url, max(0.1, args.timeout))
