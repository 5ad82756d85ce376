"""MCP for AI agents: the tools, docs and prompts served at `/mcp` (streamable HTTP), and the
stdio bridge behind `cronicorn mcp`. Never imports `api`: both faces call the same store and
service functions."""
