"""Operations every face calls: the REST API (`api/`), the web dashboard (`web/`), the MCP
tools (`mcp/`) and the CLI (`commands/`).

A service takes a connection (the face owns the transaction), the caller's user id and the
values it needs, and returns typed results (models from `cronicorn.schemas` or dataclasses),
never HTTP responses or display strings. It raises the typed errors of `cronicorn.errors`'s
table (`store.errors`, `auth.errors`, ...); each face maps them once at its edge.
"""
