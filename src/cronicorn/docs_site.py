"""Where the documentation lives, in a checkout and in an installed wheel (the MkDocs hook
that renders the API reference lives in `api/docs_hook.py`: this module never loads the API).

The wheel carries `docs/` and `mkdocs.yml` under `cronicorn/_docs/` and, when the image or a
release built it first, the rendered site under `cronicorn/_site/` (see pyproject.toml). MCP
resources and `cronicorn docs` find them through `docs_root()` and `built_site()` alike, so
they never depend on where Cronicorn was installed from.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parents[1]  # src/cronicorn -> the repository root


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
