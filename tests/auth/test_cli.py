"""`cronicorn users …` and `cronicorn apikey …` as real subprocesses against a real database,
and the key they print working against the served API."""

from __future__ import annotations

import json
import subprocess

import aiohttp
import pytest

from auth.auth_support import call, sign_in
from auth.conftest import SECRET
from support import CLI, cli_env, run_cli

pytestmark = pytest.mark.slow


def _env(database_url: str) -> dict[str, str]:
    return cli_env(DATABASE_URL=database_url, AUTH_SECRET=SECRET)


async def test_operator_bootstraps_without_a_browser(
    database_url: str, base: str, http: aiohttp.ClientSession
) -> None:
    env = _env(database_url)
    made = run_cli("users", "create", "ops@example.com", "--admin", env=env)
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().removeprefix("Password (shown once): ")
    assert len(password) >= 16
    assert "\n" not in password
    await sign_in(http, base, "ops@example.com", password)

    piped = subprocess.run(
        [CLI, "users", "create", "dev@example.com", "--password-stdin", "--name", "Dev"],
        input="a long enough password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == ""  # nothing secret echoed
    await sign_in(http, base, "dev@example.com", "a long enough password")

    created = run_cli("apikey", "create", "--user", "dev@example.com", "--name", "ci", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n"
    assert key.startswith("cron_")
    headers = {"x-api-key": key}
    status, _ = await call(http, "POST", f"{base}/api/jobs", headers=headers, json={"name": "j"})
    assert status == 201

    listed = run_cli("users", "list", "--json", env=env)
    users = {u["email"]: u for u in json.loads(listed.stdout)}
    assert users["ops@example.com"]["isAdmin"] is True
    assert users["dev@example.com"]["isAdmin"] is False

    keys = json.loads(
        run_cli("apikey", "list", "--user", "dev@example.com", "--json", env=env).stdout
    )
    assert [k["prefix"] for k in keys] == [key[:12]]
    assert key not in json.dumps(keys)

    duplicate = run_cli("users", "create", "DEV@example.com", env=env)
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip().startswith("error: A user with email")
    assert "Traceback" not in duplicate.stderr

    assert run_cli("users", "disable", "dev@example.com", env=env).returncode == 0
    assert (await call(http, "GET", f"{base}/api/jobs", headers=headers))[0] == 401
    assert run_cli("users", "enable", "dev@example.com", env=env).returncode == 0
    assert (await call(http, "GET", f"{base}/api/jobs", headers=headers))[0] == 200

    revoked = run_cli("apikey", "revoke", keys[0]["id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert (await call(http, "GET", f"{base}/api/jobs", headers=headers))[0] == 401
    again = run_cli("apikey", "revoke", keys[0]["id"], env=env)
    assert again.returncode == 1
    assert "No API key" in again.stderr

    missing = run_cli("apikey", "create", "--user", "nobody@example.com", "--name", "x", env=env)
    assert missing.returncode == 1
    assert missing.stdout == ""
