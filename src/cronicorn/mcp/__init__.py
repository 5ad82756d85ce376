"""MCP for AI agents: the tools, docs and prompts served at `/mcp` (streamable HTTP). The
stdio side, `cronicorn mcp`, is a client of it in `commands/mcp/`. Never imports `api`: both
faces call the same store and service functions."""
