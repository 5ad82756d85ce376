"""What every command shares: settings loading, and the one mapping from known failures to a
single stderr line and an exit status (no tracebacks unless `cronicorn --debug`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import psycopg
import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from cronicorn.auth.errors import AuthError
from cronicorn.backup.errors import BackupError
from cronicorn.config import ConfigError, Settings, load_settings
from cronicorn.embedded import EmbeddedError
from cronicorn.errors import first_line
from cronicorn.logs import configure as configure_logs
from cronicorn.schemas.common import camel
from cronicorn.serve import StartupError
from cronicorn.store.errors import Invalid, StoreError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

out = Console()
err = Console(stderr=True)
debug_mode: dict[str, bool] = {"on": False}


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_cli_settings() -> Settings:
    loaded = load_settings()
    configure_logs(loaded.log_level, loaded.log_format)
    return loaded


KNOWN: tuple[type[Exception], ...] = (
    StartupError,
    EmbeddedError,
    StoreError,
    AuthError,
    BackupError,
)
"""The typed errors of every layer a command drives (the same ones `error_table.py` maps to
HTTP for the other faces); each is one line on stderr and exit 1."""


def one_line(exc: Exception) -> str:
    """A known error as the CLI says it: its message, and for an invalid value its path (the
    CLI's only source of `Invalid` is an import document)."""
    if isinstance(exc, Invalid):
        return f"invalid document at {camel(exc.field)}: {exc.message}"
    return str(exc)


def friendly(*expected: type[Exception], interrupted_exit: int = 0) -> Callable[[F], F]:
    """Map ConfigError (exit 2), the `KNOWN` typed errors and the command's own `expected`
    errors (exit 1), and database errors as a last resort, to one line each. Ctrl-C/SIGTERM
    ends a server quietly (exit 0); one-shot work passes `interrupted_exit=130`."""

    known: tuple[type[Exception], ...] = (*KNOWN, *expected)

    def decorate(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except ConfigError as exc:
                _maybe_raise()
                fail(f"configuration error: {exc}", EXIT_CONFIG)
            except known as exc:
                _maybe_raise()
                fail(one_line(exc))
            except (psycopg.Error, SQLAlchemyError) as exc:
                _maybe_raise()
                fail(
                    f"database error: {first_line(exc)}; check that PostgreSQL is up and reachable"
                )
            except KeyboardInterrupt:
                if interrupted_exit == 0:
                    raise typer.Exit(0) from None
                fail("interrupted", interrupted_exit)

        return wrapper  # type: ignore[return-value]

    return decorate


def _maybe_raise() -> None:
    if debug_mode["on"]:
        raise
