"""The MkDocs hook (mkdocs.yml `hooks:` loads docs_hooks.py, which re-exports these): the API
reference page from the OpenAPI document, rendered at build time by the same renderer as
`/api/llms.txt`, and the configuration page from .env.example, so neither page can drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cronicorn.api.app import create_api
from cronicorn.api.docs import render_markdown
from cronicorn.config import Settings
from cronicorn.docs_site import docs_project
from cronicorn.runtime import Runtime
from cronicorn.store.db import make_async_engine

API_PAGE = "reference/api.md"
API_MARKER = "<!-- openapi -->"
ENV_MARKER = "<!-- env-example -->"

_state: dict[str, Any] = {}


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, built without a database (the engine never connects)."""
    url = "postgresql://docs@localhost/docs"
    runtime = Runtime(
        settings=Settings(_env_file=None),
        database_url=url,
        engine=make_async_engine(url, pool_size=1, max_overflow=0),
        auth_secret="docs-build-" + "x" * 32,
    )
    return create_api(runtime).openapi()


def api_reference_markdown(document: dict[str, Any]) -> str:
    """Every operation, one heading level down so the page keeps its own title."""
    lines = render_markdown(document).splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(("#" + line) if line.startswith("#") else line for line in lines)


def on_pre_build(config: Any) -> None:
    _state["openapi"] = openapi_document()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if ENV_MARKER in markdown:
        env = (docs_project() / ".env.example").read_text()
        markdown = markdown.replace(ENV_MARKER, f"```bash\n{env}```")
    if page.file.src_uri == API_PAGE and API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_reference_markdown(_state["openapi"]))
    return markdown


def on_post_build(config: Any) -> None:
    """Ship the document itself beside the page (reference/openapi.json)."""
    target = Path(config["site_dir"]) / "reference" / "openapi.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_state["openapi"], indent=1))
