"""An idle `cronicorn up` does not carry the MCP SDK: the app imports it on the first request
to `/mcp` (about 25 MB of the process's memory with OpenTelemetry, bench/README.md memory.py).
The tests in test_mcp.py prove `/mcp` still answers once it is asked."""

from __future__ import annotations

import subprocess
import sys

BUILD_THE_APP = """
import sys
from cronicorn.app import create_app
from cronicorn.cli import app as cli
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime

url = "postgresql://nobody@127.0.0.1:1/none"
create_app(Runtime.create(load_settings(DATABASE_URL=url, AUTH_SECRET="s" * 40), url))
loaded = sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp."))
assert not loaded, loaded
"""


def test_building_the_app_leaves_the_mcp_sdk_unimported() -> None:
    run = subprocess.run(
        [sys.executable, "-c", BUILD_THE_APP], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
