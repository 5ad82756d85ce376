"""The README's own commands, as a new user runs them: `make run` is `cronicorn up`, the health
check answers as shown, and the "first scheduled endpoint" block creates an API key, a job and
an endpoint that is then scheduled (its preview lists upcoming runs)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipping.shipping_support import ROOT, bash_blocks
from support import CLI, cli_env, free_port, start_cli, wait_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

README = (ROOT / "README.md").read_text()


def _block(marker: str) -> str:
    (block,) = [b for b in bash_blocks(README) if marker in b]
    return block


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[dict[str, str], int, Path]]:
    """`make run`'s command on a fresh home (outside pytest's tmp: the embedded server may run
    as another user that must traverse the path)."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:.*\n\t.*\$\(BIN\)/cronicorn up$", makefile, re.M)
    place = Path(tempfile.mkdtemp(prefix="cronicorn-readme-"))
    place.chmod(0o755)
    port = free_port()
    env = cli_env(CRONICORN_HOME=str(place / ".cronicorn"), HOST="127.0.0.1", PORT=str(port))
    app = start_cli("up", env=env, cwd=place)
    try:
        yield env, port, place
    finally:
        app.send_signal(signal.SIGTERM)
        app.communicate(timeout=60)
        shutil.rmtree(place, ignore_errors=True)


def _sh(script: str, env: dict[str, str], port: int, cwd: Path) -> str:
    script = script.replace("localhost:3333", f"127.0.0.1:{port}")
    script = script.replace(".venv/bin/cronicorn", CLI)
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_quick_start(running: tuple[dict[str, str], int, Path]) -> None:
    env, port, place = running

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_sync(up, timeout=120, what="cronicorn up")
    check = _block("curl http://localhost:3333/api/health\n# {")
    shown = json.loads(check.split("# ", 1)[1].replace("{…}", "{}"))
    health = json.loads(_sh(check, env, port, place))
    assert set(shown) <= set(health)
    assert health["status"] == shown["status"] == "ok"

    first = _block("KEY=$(.venv/bin/cronicorn apikey create")
    created = _sh(first + '\necho\necho "KEY=$KEY"\n', env, port, place)
    endpoint = json.loads(created.splitlines()[-2])
    key = created.splitlines()[-1].removeprefix("KEY=")
    assert endpoint["name"] == "build report"
    assert endpoint["baselineIntervalMs"] == 60000
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/endpoints/{endpoint['id']}/preview?count=5",
        headers={"x-api-key": key},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        preview = json.loads(resp.read())
    assert len(preview["runs"]) == 5, preview
