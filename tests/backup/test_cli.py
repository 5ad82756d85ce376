"""The real `cronicorn backup` CLI against an embedded home (subprocesses, bundled tools)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backup.backup_support import counts, seed
from support import cli_env, free_port, run_cli, start_cli, wait_sync

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backup-cli")]

PASSPHRASE = "correct horse battery staple"


@dataclass
class Home:
    env: dict[str, str]
    cwd: Path
    url: str

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, cwd=cwd or self.cwd, timeout=180)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """An embedded server kept up with `cronicorn db start`, migrated and seeded; shared by
    this module's tests (each leaves the data as it found it)."""
    tmp_path = tmp_path_factory.mktemp("cli")
    cwd = tmp_path / "deploy"
    cwd.mkdir()
    (cwd / ".env").write_text(f"AUTH_SECRET={'k' * 40}\nBACKUP_PASSPHRASE={PASSPHRASE}\n")
    env = cli_env(CRONICORN_HOME=str(tmp_path / "home"), HOST="127.0.0.1")
    started = run_cli("db", "start", env=env, cwd=cwd)
    assert started.returncode == 0, started.stderr
    try:
        migrated = run_cli("migrate", env=env, cwd=cwd)
        assert migrated.returncode == 0, migrated.stderr
        url = run_cli("db", "url", env=env, cwd=cwd).stdout.strip()
        seed(url)
        yield Home(env=env, cwd=cwd, url=url)
    finally:
        run_cli("db", "stop", "--force", env=env, cwd=cwd)


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    text = " ".join(result.stderr.split())
    for needle in needles:
        assert needle in text, result.stderr
    assert text.startswith("error:")


def test_create_list_verify_restore_and_config(home: Home, tmp_path: Path) -> None:
    created = home.json("backup", "create")
    name = created["name"]
    assert created["configIncluded"] is True
    assert created["rowCounts"]["runs"] == 60
    listing = home.json("backup", "list")
    assert listing["backups"][0]["name"] == name
    human = home.run("backup", "list")
    assert name in human.stdout
    assert "no" in human.stdout, "not verified yet"

    verified = home.run("backup", "verify", name)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASSED" in verified.stdout
    assert "SELECT count(*) FROM jobs: 3 jobs" in verified.stdout
    listed = {b["name"]: b for b in home.json("backup", "list")["backups"]}
    assert listed[name]["verified"] is True

    with psycopg.connect(home.url) as conn:
        conn.execute("DELETE FROM runs")
    restored = home.run("backup", "restore", name)
    assert restored.returncode == 0, restored.stderr
    assert "no migrations pending" in restored.stdout
    assert counts(home.url)["runs"] == 60

    new_machine = tmp_path / "new-machine"
    new_machine.mkdir()
    no_pass = home.run("backup", "restore", name, "--config", cwd=new_machine)
    _one_line_error(no_pass, "BACKUP_PASSPHRASE is not set")
    home.env["BACKUP_PASSPHRASE"] = "not the right one!"
    wrong = home.run("backup", "restore", name, "--config", cwd=new_machine)
    _one_line_error(wrong, "does not decrypt")
    home.env["BACKUP_PASSPHRASE"] = PASSPHRASE
    written = home.run("backup", "restore", name, "--config", cwd=new_machine)
    assert written.returncode == 0, written.stderr
    assert (new_machine / ".env").read_text() == (home.cwd / ".env").read_text()
    (new_machine / ".env").write_text("changed\n")
    refused = home.run("backup", "restore", name, "--config", cwd=new_machine)
    _one_line_error(refused, "already exists", "--overwrite")
    del home.env["BACKUP_PASSPHRASE"]

    _one_line_error(home.run("backup", "verify", "cronicorn-19990101T000000Z"), "no backup named")


def test_restore_is_refused_while_the_app_runs(home: Home) -> None:
    name = home.json("backup", "create", "--no-config")["name"]
    port = free_port()
    app = start_cli("up", env={**home.env, "PORT": str(port)}, cwd=home.cwd)
    try:
        wait_sync(lambda: _connected(home.url, "cronicorn-up@%"), timeout=60, what="cronicorn up")
        refused = home.run("backup", "restore", name)
        who = f"cronicorn-up on {socket.gethostname()} (pid {app.pid})"
        _one_line_error(refused, who, "Stop them first", "--force")
    finally:
        app.send_signal(signal.SIGTERM)
        app.communicate(timeout=30)
    assert home.run("backup", "restore", name).returncode == 0


def _connected(url: str, application: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", (application,)
        ).fetchone()
    return bool(row and row[0])


def test_an_interrupted_restore_keeps_the_data_and_says_how_to_recover(home: Home) -> None:
    """Deterministic: a session holds a lock the load needs, so the restore is certainly
    inside its load transaction (waiting) when SIGINT arrives, however busy the machine."""
    name = home.json("backup", "create", "--no-config")["name"]
    with psycopg.connect(home.url) as conn:
        conn.execute("DELETE FROM runs WHERE id IN (SELECT id FROM runs ORDER BY id LIMIT 7)")
    before = counts(home.url)

    with psycopg.connect(home.url) as blocker:
        blocker.execute("LOCK TABLE runs IN ACCESS SHARE MODE")  # held until rollback
        restore = start_cli("backup", "restore", name, env=home.env, cwd=home.cwd)
        wait_sync(
            lambda: _load_waits_on_a_lock(home.url) or restore.poll() is not None,
            timeout=120,
            what="the restore's load to wait for the lock",
        )
        assert restore.poll() is None, restore.communicate()
        restore.send_signal(signal.SIGINT)
        _, stderr = restore.communicate(timeout=60)
        blocker.rollback()
    text = " ".join(stderr.split())
    assert restore.returncode == 1, stderr
    assert "did not finish" in text
    assert "previous data or the backup's, never a mix" in text
    assert counts(home.url) == before, "the load was rolled back: the old data is all there"
    safety = text.split("safety backup ")[1].split(":")[0]
    assert safety.startswith("cronicorn-")
    assert f"cronicorn backup restore {safety} --force" in text

    listed = home.run("backup", "list")
    assert "did not finish" in " ".join(listed.stderr.split())
    recovered = home.run("backup", "restore", safety, "--force", "--no-safety-backup")
    assert recovered.returncode == 0, recovered.stderr
    assert counts(home.url) == before
    assert "did not finish" not in home.run("backup", "list").stderr


def _load_waits_on_a_lock(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cronicorn-restore' "
            "AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def test_off_site_with_s3_from_the_command_line(
    home: Home, s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    bucket = "cli-offsite"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    home.env.update(
        S3_ENDPOINT_URL=s3_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    created = home.json("backup", "create", "--to", f"s3://{bucket}/site-a", "--format", "sql-gz")
    assert created["offsiteUrl"] == f"s3://{bucket}/site-a/{created['name']}"
    elsewhere = {**home.env, "BACKUP_DIR": str(tmp_path / "fetched")}
    fetched = run_cli(
        "backup", "download", created["name"], "--from", f"s3://{bucket}/site-a", env=elsewhere
    )
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "fetched" / created["name"] / "db.sql.gz").is_file()
