"""The operator page's Docker commands, as docs/self-hosting/docker.md shows them (and the seed
page /work/shared/seed/backup-restore.md, where present, holds the same commands), run against
this compose file's names: a `docker` stand-in (docker_shim.py) refuses any container, service
or image the compose file does not define and runs the rest on embedded PostgreSQL servers and
a real `cronicorn up`. Backup, stop, drop and restore, start, health, data intact, then the
backup verification on a scratch server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from cronicorn.embedded import EmbeddedPostgres
from cronicorn.store.migrate import upgrade
from shipping.shipping_support import ROOT, bash_blocks, compose
from support import CLI, cli_env, free_port, run_cli, wait_sync

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("shipping-seed"), pytest.mark.timeout(400)]

PAGE = ROOT / "docs" / "self-hosting" / "docker.md"
SEED = ROOT.parent / "shared" / "seed" / "backup-restore.md"
SECTION = "## Backup and restore with Compose"
DUMP_IN_PAGE = "/path/to/backups/cronicorn-20250115.sql.gz"


def _blocks() -> list[str]:
    text = PAGE.read_text()
    section = text[text.index(SECTION) :]
    return bash_blocks(section)


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    port: int
    url: str

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        script = script.replace("localhost:3333", f"127.0.0.1:{self.port}")
        script = script.replace(DUMP_IN_PAGE, str(self.dump()))
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def dump(self) -> Path:
        found = sorted(self.root.glob("cronicorn-backup-*.sql.gz"))
        return found[-1] if found else self.root / "missing.sql.gz"

    def app_log(self) -> str:
        log = self.root / "state" / "app.log"
        return log.read_text() if log.exists() else ""

    def wait_healthy(self) -> None:
        pid = int((self.root / "state" / "app.pid").read_text())

        def healthy() -> bool:
            if not Path(f"/proc/{pid}").exists():
                raise AssertionError(f"cronicorn up exited: {self.app_log()}")
            return _health(self.port) == 200

        wait_sync(healthy, timeout=180, what="cronicorn up to be healthy")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Outside pytest's tmp_path: as root the servers run as `cronicorn_pg`, which must
    traverse the path, and another pytest session starting resets /tmp/pytest-of-root to 0700."""
    root = Path(tempfile.mkdtemp(prefix="cronicorn-ship-"))
    (root / "state").mkdir()
    bin_dir = root / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "docker"
    shim.write_text(
        f"#!{sys.executable}\n" + (Path(__file__).parent / "docker_shim.py").read_text()
    )
    shim.chmod(0o755)
    port = free_port()
    env = cli_env(
        CRONICORN_HOME=str(root / "home"),
        HOST="127.0.0.1",
        PORT=str(port),
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        PYTHONPATH=str(ROOT / "tests"),
        SHIM_STATE=str(root / "state"),
        SHIM_COMPOSE=str(ROOT / "docker-compose.yml"),
        SHIM_CLI=CLI,
    )
    assert run_cli("db", "start", env=env).returncode == 0
    url = EmbeddedPostgres(root / "home").url()
    upgrade(url)  # what the migrator does on the first `docker compose up`
    stack = Stack(root, env, port, url)
    try:
        yield stack
    finally:
        pid_file = root / "state" / "app.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        scratch = root / "state" / "scratch.json"
        homes = json.loads(scratch.read_text()).values() if scratch.exists() else []
        for home in [str(root / "home"), *homes]:
            run_cli("db", "stop", "--force", env={**env, "CRONICORN_HOME": home})
        shutil.rmtree(root, ignore_errors=True)


def _seed_data(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (id, email, is_admin) VALUES ('u1', 'ops@example.com', true)"
        )
        conn.execute("INSERT INTO jobs (id, user_id, name) VALUES ('job-seed', 'u1', 'nightly')")
        conn.execute(
            "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, "
            "next_run_at) SELECT 'ep-' || g, 'job-seed', j.user_id, 'ping ' || g, "
            "'https://example.com/' || g, 60000, now() + interval '1 hour' "
            "FROM generate_series(1, 3) g, jobs j WHERE j.id = 'job-seed'"
        )
    return _counts(url)


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in ("users", "jobs", "endpoints")
        }


def test_page_names_match_the_stack_and_the_seed() -> None:
    services = compose()["services"]
    text = "\n".join(_blocks())
    assert re.findall(r"docker (?:exec(?: -i)?) (\S+)", text)
    for container in re.findall(r"docker exec(?: -i)? (\S+)", text):
        assert container in {services["db"]["container_name"], "pg-test"}
    (stopped,) = re.findall(r"docker compose stop (.+)", text)
    assert set(stopped.split()) == set(services) - {"db", "migrator"}
    assert "localhost:3333/api/health" in text
    if SEED.exists():  # the contract: its Docker commands appear on our page unchanged
        for block in bash_blocks(SEED.read_text()):
            for line in block.splitlines():
                if line.strip().startswith(("docker", "gunzip", "curl")):
                    assert line.strip() in text, line


def test_backup_restore_and_verify_as_the_page_says(stack: Stack) -> None:
    blocks = _blocks()
    backup, stop, restore, start, check, verify = blocks
    expected = _seed_data(stack.url)  # the stack's database, migrated and in use
    assert expected["endpoints"] == 3

    made = stack.sh(backup)
    assert made.returncode == 0, made.stderr
    assert stack.dump().stat().st_size > 1000

    stopped = stack.sh(stop)
    assert stopped.returncode == 0, stopped.stderr
    assert _health(stack.port) == 0, "the app is down, the database up"
    with psycopg.connect(stack.url) as conn:
        conn.execute("DELETE FROM endpoints")  # what a restore must bring back

    restored = stack.sh(restore)
    assert restored.returncode == 0, restored.stderr
    assert "ERROR" not in restored.stderr, restored.stderr

    started = stack.sh(start)
    assert started.returncode == 0, started.stderr
    stack.wait_healthy()
    assert "No pending migrations" in stack.app_log()
    health = stack.sh(check)
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["migrations"] == "current"
    assert _counts(stack.url) == expected

    verified = stack.sh(verify)
    assert verified.returncode == 0, verified.stderr
    assert " endpoints " in verified.stdout
    assert re.search(r"count\s*-+\s*1\s", verified.stdout), verified.stdout
    assert json.loads((stack.root / "state" / "scratch.json").read_text()) == {}


def test_the_stand_in_refuses_names_the_stack_lacks(stack: Stack) -> None:
    for command in (
        "docker exec cronicorn-postgres psql -U user -c 'SELECT 1'",
        "docker compose stop api worker",
        "docker run --name x -e POSTGRES_USER=user -e POSTGRES_DB=db -d postgres:16",
        "docker run --name x -e POSTGRES_USER=postgres -e POSTGRES_DB=db -d postgres:17",
    ):
        done = stack.sh(command)
        assert done.returncode == 125, (command, done.stdout, done.stderr)
