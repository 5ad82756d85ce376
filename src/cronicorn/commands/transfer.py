"""`cronicorn export [FILE]` and `cronicorn import FILE [--dry-run]`: a user's jobs and
endpoints as a YAML or JSON document (chosen by the file's extension), straight against the
database, with the same rules as `GET /api/export` and `POST /api/import`."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError

from cronicorn.commands.common import fail, friendly
from cronicorn.config import load_settings
from cronicorn.dispatch import DispatchConfig, Dispatcher
from cronicorn.errors import first_line
from cronicorn.runtime import Runtime
from cronicorn.schemas.transfer import ImportReport, TransferDocument
from cronicorn.serve import check_database, database
from cronicorn.services.transfer import checked_by, export_document, import_document
from cronicorn.store import users

YAML_SUFFIXES = {".yaml", ".yml"}


class TransferError(Exception):
    """A problem with the document, the user or the file; one line for stderr."""


def register(app: typer.Typer) -> None:
    """Add `export` and `import` to the main command line."""
    app.command("export")(export_command)
    app.command("import")(import_command)


def export_command(
    file: Path | None = typer.Argument(
        None, help="Write here (.yaml/.yml or .json); default stdout."
    ),
    user: str = typer.Option(..., "--user", help="Whose jobs to export (email)."),
    yaml_out: bool = typer.Option(False, "--yaml", help="YAML on stdout (files: by extension)."),
) -> None:
    """Export a user's jobs and endpoints (archived ones left out).

    Examples: `cronicorn export --user me@example.com > jobs.json`,
    `cronicorn export jobs.yaml --user me@example.com`
    """
    doc = _run(lambda runtime: _export(runtime, user))
    as_yaml = file.suffix.lower() in YAML_SUFFIXES if file is not None else yaml_out
    text = _dump(doc, as_yaml)
    if file is None:
        sys.stdout.write(text)
    else:
        file.write_text(text)
        typer.echo(f"Exported {len(doc['jobs'])} job(s) to {file}", err=True)


def import_command(
    file: Path = typer.Argument(..., help="A document from `cronicorn export` (.yaml/.yml/.json)."),
    user: str = typer.Option(..., "--user", help="Whose jobs to create or update (email)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would change; write nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import jobs and endpoints: create what is missing, update what differs, delete nothing.

    Jobs match by name, endpoints by name within their job, so importing twice changes
    nothing. All or nothing: one invalid entry rejects the whole file.
    Example: `cronicorn import jobs.yaml --user me@example.com --dry-run`
    """
    doc = _parse(file)
    report = _run(lambda runtime: _import(runtime, user, doc, dry_run))
    if as_json:
        typer.echo(report.model_dump_json(by_alias=True, indent=2))
        return
    for action in report.actions:
        if action.action != "unchanged":
            detail = f" ({', '.join(action.changes)})" if action.changes else ""
            typer.echo(f"{action.action:7} {action.kind:8} {action.job} / {action.name}{detail}")
    prefix = "Would apply" if report.dry_run else "Applied"
    typer.echo(
        f"{prefix}: created {report.created.jobs} job(s) and {report.created.endpoints} "
        f"endpoint(s), updated {report.updated.jobs} job(s) and {report.updated.endpoints} "
        f"endpoint(s), {report.unchanged.endpoints} endpoint(s) unchanged"
    )


# -- plumbing -------------------------------------------------------------------------------
def _run(work: Any) -> Any:
    """Open the database (embedded or DATABASE_URL), run `work(runtime)`, map errors."""

    @friendly(TransferError)
    def inner() -> Any:
        cfg = load_settings()
        with database(cfg) as url:
            check_database(url, cfg.db_connect_timeout_s)

            async def main() -> Any:
                runtime = Runtime.create(cfg, url, role="cli")
                try:
                    return await work(runtime)
                finally:
                    await runtime.close()

            return asyncio.run(main())

    return inner()


async def _user_id(runtime: Runtime, email: str) -> str:
    async with runtime.engine.connect() as conn:
        row = await users.get_by_email(conn, email)
    if row is None:
        raise TransferError(f"no user {email!r}; check the email (users are listed by the web UI)")
    return row.id


async def _export(runtime: Runtime, email: str) -> dict[str, Any]:
    user_id = await _user_id(runtime, email)
    async with runtime.engine.connect() as conn:
        return await export_document(conn, user_id, datetime.now(UTC))


async def _import(
    runtime: Runtime, email: str, doc: TransferDocument, dry_run: bool
) -> ImportReport:
    user_id = await _user_id(runtime, email)

    config = DispatchConfig(allow_networks=runtime.settings.allow_networks)
    async with Dispatcher(config) as dispatcher, runtime.engine.begin() as conn:
        return await import_document(
            conn,
            user_id,
            doc,
            datetime.now(UTC),
            check_url=checked_by(dispatcher),
            dry_run=dry_run,
            quotas=runtime.settings.quotas,
        )


def _parse(file: Path) -> TransferDocument:
    try:
        text = file.read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    try:
        data = yaml.safe_load(text) if file.suffix.lower() in YAML_SUFFIXES else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        fail(
            f"{file} is not valid {'YAML' if file.suffix.lower() in YAML_SUFFIXES else 'JSON'}: "
            f"{first_line(exc)}"
        )
    try:
        return TransferDocument.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "document"
        fail(f"invalid document at {path}: {first['msg']}")


def _dump(doc: dict[str, Any], as_yaml: bool) -> str:
    if as_yaml:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
