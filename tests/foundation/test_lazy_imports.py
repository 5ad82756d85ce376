"""What an idle `cronicorn up` does not carry (bench/README.md, memory.py):

- the MCP SDK (about 25 MB with OpenTelemetry): the app imports it on the first request to
  `/mcp`; test_mcp.py proves `/mcp` still answers once it is asked;
- Alembic and Mako (about 10 MB): a database already at the code's head is recognised by
  `store.revisions`; tests/store/test_revisions.py proves its answers are Alembic's.
"""

from __future__ import annotations

import subprocess
import sys

START_AT_HEAD = """
import sys
from cronicorn.app import create_app
from cronicorn.cli import app as cli
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store.migrate import upgrade

url = sys.argv[1]
result = upgrade(url)
assert result.applied == [] and result.after == result.before, result
runtime = Runtime.create(load_settings(DATABASE_URL=url, AUTH_SECRET="s" * 40), url)
assert runtime.code_revision == result.after, runtime.code_revision
create_app(runtime)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mcp", "alembic", "mako"))
assert not loaded, loaded
"""


def test_starting_at_head_leaves_the_mcp_sdk_and_alembic_unimported(database_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", START_AT_HEAD, database_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
