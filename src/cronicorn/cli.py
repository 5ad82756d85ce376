"""The `cronicorn` command line (Typer). Commands stay thin: they parse, call, print.

Every error is one line on stderr naming the problem and the fix, exit status non-zero;
`--debug` shows the traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from cronicorn import __version__
from cronicorn.commands.common import debug_mode, err, friendly, load_cli_settings, out
from cronicorn.commands.lazy import LAZY, LazyGroup
from cronicorn.config import Settings
from cronicorn.embedded import EmbeddedPostgres
from cronicorn.serve import (
    StartupError,
    check_database,
    database,
    install_sigterm,
    run_roles,
    serve,
)

if TYPE_CHECKING:
    from cronicorn.app import Role

app = typer.Typer(
    cls=LazyGroup,  # export, import, users, apikey, backup, ... load on first use
    help="Cronicorn: a self-hosted scheduler for HTTP jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the embedded PostgreSQL server.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def settings() -> Settings:
    return load_cli_settings()


def _print_version(value: bool) -> None:
    if value:
        out.print(__version__)
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    debug_mode["on"] = debug


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def _migrate_and_seed(cfg: Settings, url: str) -> None:
    from cronicorn.store.migrate import upgrade

    check_database(url, cfg.db_connect_timeout_s)
    result = upgrade(url)
    if result.applied:
        out.print(f"Applied {len(result.applied)} migration(s): now at revision {result.after}")
    else:
        out.print(f"No pending migrations (database at revision {result.after})")
    _ensure_admin(cfg, url)


def _ensure_admin(cfg: Settings, url: str) -> None:
    from cronicorn.auth.admin import ensure_admin
    from cronicorn.store.db import make_async_engine

    async def _run() -> Any:
        engine = make_async_engine(url, pool_size=1, max_overflow=0)
        try:
            return await ensure_admin(engine, cfg)
        finally:
            await engine.dispose()

    outcome = asyncio.run(_run())
    if outcome.created and outcome.generated_password:
        out.print(
            f"Created admin user [bold]{outcome.email}[/] with password "
            f"[bold]{outcome.generated_password}[/] (shown once; change it after logging in)"
        )
    elif outcome.created:
        out.print(f"Created admin user {outcome.email}")


@app.command()
@friendly()
def migrate() -> None:
    """Apply pending database migrations (safe to run from several processes at once)."""
    cfg = settings()
    install_sigterm()
    with database(cfg) as url:
        _migrate_and_seed(cfg, url)


@app.command()
@friendly()
def up() -> None:
    """Run every role in one process: migrate, then serve the API with the background roles.

    With no DATABASE_URL an embedded PostgreSQL is started under CRONICORN_HOME.
    """
    cfg = settings()
    install_sigterm()
    with database(cfg, supervise=True) as url:
        _migrate_and_seed(cfg, url)
        out.print(f"Cronicorn {__version__} on http://{_display_host(cfg.host)}:{cfg.port}")
        serve(cfg, url, _background_roles(), role="up")


@app.command()
@friendly()
def api(
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=64,
        help="Processes serving the API (default API_WORKERS, 1); about one per core.",
    ),
) -> None:
    """Serve only the REST API (run `cronicorn migrate` first)."""
    cfg = settings()
    install_sigterm()
    with database(cfg, supervise=True) as url:
        check_database(url, cfg.db_connect_timeout_s)
        serve(cfg, url, (), role="api", workers=workers or cfg.api_workers)


@app.command()
@friendly()
def scheduler(
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve Prometheus /metrics on this port (default: SCHEDULER_METRICS_PORT; "
        "unset: no listener).",
    ),
) -> None:
    """Run only the scheduler: claim due endpoints and call them (run `cronicorn migrate`
    first). Any number may run at once, on any machines, against one database.

    Examples:

      cronicorn scheduler

      SCHEDULER_CONCURRENCY=500 cronicorn scheduler --metrics-port 9464
    """
    from cronicorn.scheduler.metrics import MetricsServerError, serve_metrics

    cfg = settings()
    install_sigterm()
    with database(cfg, supervise=True) as url:
        check_database(url, cfg.db_connect_timeout_s)
        port = metrics_port or cfg.scheduler_metrics_port
        if port is not None:
            try:
                serve_metrics(cfg.host, port)
            except MetricsServerError as exc:
                raise StartupError(str(exc)) from None
        _use_uvloop()
        from cronicorn.scheduler.role import collect_less

        collect_less()  # a few collections a minute instead of ~60 a second
        run_roles(cfg, url, _scheduler_roles(), role="scheduler")


def _use_uvloop() -> None:
    """uvloop makes the scheduler's many small awaits cheaper (used when installed)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a declared dependency on Linux/macOS
        return
    uvloop.install()


def _scheduler_roles() -> list[tuple[str, Role]]:
    """Roles a lone `cronicorn scheduler` runs (the scheduler loop, scheduled backups)."""
    from cronicorn.backup.scheduled import backup_role
    from cronicorn.notify.role import notify_role
    from cronicorn.scheduler.role import scheduler_role

    return [("scheduler", scheduler_role), ("backups", backup_role), ("notify", notify_role)]


def _planner_roles() -> list[tuple[str, Role]]:
    """Roles a lone `cronicorn planner` runs (idle, and `"disabled"` in health, with no model)."""
    from cronicorn.planner.role import planner_role

    return [("planner", planner_role)]


@app.command()
@friendly()
def planner() -> None:
    """Run only the AI planner: analyse endpoints' recent responses and adjust their
    schedules within their bounds (run `cronicorn migrate` first). Any number may run at
    once, on any machines, against one database.

    Needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (Ollama, vLLM, llama.cpp, LiteLLM);
    without either it idles.

    Examples:

      OPENAI_API_KEY=sk-... cronicorn planner

      OPENAI_BASE_URL=http://localhost:11434/v1 AI_MODEL=qwen2.5:7b cronicorn planner
    """
    cfg = settings()
    install_sigterm()
    with database(cfg) as url:
        check_database(url, cfg.db_connect_timeout_s)
        run_roles(cfg, url, _planner_roles(), role="planner")


def _background_roles() -> list[tuple[str, Role]]:
    """Everything `cronicorn up` runs beside the API."""
    return [*_scheduler_roles(), *_planner_roles()]


def _display_host(host: str) -> str:
    return "localhost" if host in {"0.0.0.0", "::", ""} else host


# -- cronicorn db ---------------------------------------------------------------------------
def _embedded(cfg: Settings) -> EmbeddedPostgres:
    if not cfg.embedded:
        raise StartupError(
            "DATABASE_URL is set, so the database is external; manage it with its own tools"
        )
    return EmbeddedPostgres(cfg.home)


@db_app.command("start")
@friendly()
def db_start() -> None:
    """Start the embedded server and keep it up until `cronicorn db stop`."""
    embedded = _embedded(settings())
    embedded.start(pin=True)
    # soft_wrap: the URL is longer than a terminal line, and must stay one line to copy.
    out.print(f"Embedded PostgreSQL running: {embedded.url()}", soft_wrap=True, highlight=False)


@db_app.command("stop")
@friendly()
def db_stop(
    force: bool = typer.Option(False, "--force", help="Stop even while cronicorn uses it."),
) -> None:
    """Stop the embedded server (refuses while cronicorn processes use it)."""
    _embedded(settings()).stop(force=force)
    out.print("Embedded PostgreSQL stopped")


@db_app.command("status")
@friendly()
def db_status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show whether the embedded server runs, who uses it, and where it lives."""
    status = _embedded(settings()).status()
    data = {
        "running": status.running,
        "pid": status.pid,
        "pinned": status.pinned,
        "clients": status.clients,
        "pgdata": str(status.pgdata),
        "socketDir": str(status.socket_dir),
    }
    if as_json:
        out.print_json(json.dumps(data))
    else:
        for key, value in data.items():
            out.print(f"{key}: {value}", highlight=False, soft_wrap=True)
    if status.crashed_pid is not None:
        err.print(
            f"The server (pid {status.crashed_pid}) did not shut down cleanly (it crashed or "
            "was killed). Running cronicorn processes restart it; otherwise run "
            "`cronicorn db start`.",
            highlight=False,
            soft_wrap=True,
        )
    if not status.running:
        raise typer.Exit(3)


@db_app.command("url")
@friendly()
def db_url() -> None:
    """Print a libpq URL that psql and pg_dump accept as is."""
    cfg = settings()
    if cfg.database_url is not None:
        from cronicorn.store.db import libpq_url

        print(libpq_url(cfg.database_url))
    else:
        print(EmbeddedPostgres(cfg.home).url())


@db_app.command("env")
@friendly()
def db_env() -> None:
    """Print shell exports (PATH, PGHOST, PGPORT) so plain `psql -U user -d db` works."""
    for key, value in _embedded(settings()).env().items():
        print(f"export {key}={_shell_quote(value)}")


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly()
def db_psql(ctx: typer.Context) -> None:
    """Open psql on the database (extra arguments are passed to psql)."""
    import shutil

    from cronicorn.embedded import bin_dir

    cfg = settings()
    env = dict(os.environ)
    if cfg.database_url is not None:
        from cronicorn.store.db import libpq_url

        url, password = _split_password(libpq_url(cfg.database_url))
        if password is not None:  # the environment, not argv: `ps` shows every argv
            env["PGPASSWORD"] = password
        psql = shutil.which("psql") or str(bin_dir() / "psql")
    else:
        embedded = EmbeddedPostgres(cfg.home)
        embedded.start(pin=False)
        url, psql = embedded.url(), str(embedded.tool("psql"))
    os.execve(psql, [psql, url, *ctx.args], env)  # noqa: S606 - replaces this process by design


def _split_password(url: str) -> tuple[str, str | None]:
    """The URL without its password (user info or `password=` parameter), and the password."""
    from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password is not None else None
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}@{hostport}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "password"]
    new_query = parts.query
    if len(kept) != len(query):
        password = next(v for k, v in query if k == "password")
        new_query = urlencode(kept)
    return urlunsplit(parts._replace(netloc=netloc, query=new_query)), password


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def command_names() -> set[str]:
    """Every top-level command, the lazily loaded ones included."""
    own = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return own | {g.name for g in app.registered_groups if g.name} | set(LAZY)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        sys.exit(exc.code)
