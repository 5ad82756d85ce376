"""MkDocs hooks (mkdocs.yml `hooks:`): the API reference page from the OpenAPI document,
rendered at build time by the installed package (see cronicorn.api.docs_hook)."""

from cronicorn.api.docs_hook import on_page_markdown, on_post_build, on_pre_build

__all__ = ["on_page_markdown", "on_post_build", "on_pre_build"]
