"""The project's documentation as MCP resources, so an agent can read how scheduling, hints,
AI adaptation, response rules and signatures work before it acts.

Every Markdown page under the docs directory (`docs_site.docs_root()`, in a checkout or a
wheel) is a resource, as in the original: the URI is the front matter's `mcp.uri` if set,
else `file:///docs/<path>`; title and description come from the front matter, which reading
strips. Pages are read from disk on each call (a few small files), so a docs edit shows
without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp.types as types
import yaml
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError

from cronicorn.docs_site import docs_root

MIME = "text/markdown"
RESOURCE_NOT_FOUND = -32002  # the MCP spec's code for an unknown resource URI


@dataclass(frozen=True)
class Page:
    uri: str
    name: str
    title: str | None
    description: str | None
    body: str


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(the YAML front matter, the body without it); no front matter is `{}`."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        return {}, text
    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError:
        return {}, text
    body = text[end + 4 :].lstrip("\n")
    return (meta if isinstance(meta, dict) else {}), body


def _heading(body: str) -> str | None:
    for line in body.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def pages(root: Path | None = None) -> list[Page]:
    base = root or docs_root()
    found = []
    for path in sorted(base.rglob("*.md")):
        relative = path.relative_to(base).as_posix()
        meta, body = split_front_matter(path.read_text(encoding="utf-8"))
        mcp_meta = meta.get("mcp")
        custom = mcp_meta.get("uri") if isinstance(mcp_meta, dict) else None
        uri = str(custom or f"file:///docs/{relative}")
        title = meta.get("title") or _heading(body)
        description = meta.get("description")
        found.append(
            Page(
                uri,
                path.name,
                str(title) if title else None,
                str(description) if description else None,
                body,
            )
        )
    return found


async def list_resources(
    _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    return types.ListResourcesResult(
        resources=[
            types.Resource(
                uri=page.uri,
                name=page.name,
                title=page.title,
                description=page.description,
                mime_type=MIME,
                size=len(page.body.encode("utf-8")),
            )
            for page in pages()
        ]
    )


async def read_resource(
    _ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    for page in pages():
        if page.uri == str(params.uri):
            return types.ReadResourceResult(
                contents=[types.TextResourceContents(uri=page.uri, mime_type=MIME, text=page.body)]
            )
    raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Unknown resource: {params.uri}")
