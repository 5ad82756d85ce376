"""Where the documentation lives, in a checkout and in an installed wheel, and the MkDocs hook
that writes the API reference from the OpenAPI document at build time.

The wheel carries `docs/` and `mkdocs.yml` under `cronicorn/_docs/` and, when the image or a
release built it first, the rendered site under `cronicorn/_site/` (see pyproject.toml). MCP
resources and `cronicorn docs` find them through `docs_root()` and `built_site()` alike, so
they never depend on where Cronicorn was installed from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parents[1]  # src/cronicorn -> the repository root

API_PAGE = "reference/api.md"
API_MARKER = "<!-- openapi -->"
ENV_MARKER = "<!-- env-example -->"  # replaced by .env.example itself: the page never drifts


def docs_project() -> Path:
    """The directory holding `mkdocs.yml` (and `docs/` beside it)."""
    packaged = _PACKAGE / "_docs"
    if (packaged / "mkdocs.yml").is_file():
        return packaged
    return _CHECKOUT


def docs_root() -> Path:
    """The Markdown pages (docs/)."""
    return docs_project() / "docs"


def built_site() -> Path | None:
    """The rendered site shipped in the package, if this build has one."""
    site = _PACKAGE / "_site"
    return site if (site / "index.html").is_file() else None


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, built without a database (the engine never connects)."""
    from cronicorn.api.app import create_api
    from cronicorn.config import Settings
    from cronicorn.runtime import Runtime
    from cronicorn.store.db import make_async_engine

    url = "postgresql://docs@localhost/docs"
    runtime = Runtime(
        settings=Settings(_env_file=None),
        database_url=url,
        engine=make_async_engine(url, pool_size=1, max_overflow=0),
        auth_secret="docs-build-" + "x" * 32,
    )
    return create_api(runtime).openapi()


def api_reference_markdown(document: dict[str, Any]) -> str:
    """The reference page's body: every operation, from the same renderer as /api/llms.txt,
    one heading level down so the page keeps its own title."""
    from cronicorn.api.docs import render_markdown

    text = render_markdown(document)
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]  # the page has its own title
    return "\n".join(("#" + line) if line.startswith("#") else line for line in lines)


# -- MkDocs hook (mkdocs.yml `hooks:` loads docs_hooks.py, which re-exports these) ----------
_state: dict[str, Any] = {}


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
