"""Export and import a user's jobs and endpoints as one document (as `GET /api/export` and
`POST /api/import`, through `services.transfer`). An import from an agent is a dry run unless
it says `dryRun: false`: the agent shows the report first, then applies it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cronicorn.mcp.tooling import Call, NoArguments, Tool
from cronicorn.schemas.common import In
from cronicorn.schemas.transfer import ImportReport, TransferDocument
from cronicorn.services import transfer
from cronicorn.store.errors import Invalid


class ImportArgs(In):
    document: TransferDocument = Field(
        description="A document as exportJobs returns it: {version: 1, jobs: [{name, "
        "description?, aiMode?, endpoints: [endpoint fields as in addEndpoint]}]}"
    )
    dry_run: bool = Field(
        default=True,
        description="true (the default): change nothing, report what would change; false: apply it",
    )


async def _export(call: Call, _: NoArguments) -> dict[str, Any]:
    return await transfer.export_document(call.conn, call.user_id, call.now)


async def _import(call: Call, args: ImportArgs) -> ImportReport:
    dispatcher = await call.dispatcher()
    try:
        return await transfer.import_document(
            call.conn,
            call.user_id,
            args.document,
            call.now,
            check_url=transfer.checked_by(dispatcher),
            dry_run=args.dry_run,
            quotas=call.runtime.settings.quotas,
        )
    except Invalid as exc:  # its path is inside the document argument
        raise Invalid(f"document.{exc.field}", exc.message) from None


TOOLS: list[Tool[Any]] = [
    Tool(
        "exportJobs",
        "Export jobs",
        "The caller's jobs and endpoints (archived ones left out) as one document, for a "
        "backup, a review or importJobs on another server.",
        NoArguments,
        _export,
        output=TransferDocument,
        read_only=True,
    ),
    Tool(
        "importJobs",
        "Import jobs",
        "Create or update jobs and endpoints from a document: jobs match by name, endpoints "
        "by name within their job; what matches is updated to the document, the rest is "
        "created, nothing is deleted, all or nothing. Dry run by default: show the report "
        "(created, updated, unchanged, per-field changes) to the user, then call again with "
        "dryRun false to apply.",
        ImportArgs,
        _import,
        output=ImportReport,
        idempotent=True,
    ),
]
