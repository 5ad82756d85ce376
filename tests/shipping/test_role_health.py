"""Health of processes without the API (what compose, Kubernetes and systemd probe): a real
`cronicorn scheduler` with HEALTH_PORT answers /health with its database and scheduler
sections and /livez; `cronicorn health scheduler` exits 0 while it is healthy and 1 once its
database is gone, and 1 when nothing listens. Never a check that only sees a process exist."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from support import cli_env, free_port, run_cli, start_cli, wait_sync

pytestmark = [pytest.mark.slow]


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, OSError):
        return 0, None


def test_scheduler_health_follows_its_database(database_url: str, pg_server: Any) -> None:
    port = free_port()
    env = cli_env(DATABASE_URL=database_url, HOST="127.0.0.1", HEALTH_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    proc = start_cli("scheduler", env=env)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"scheduler exited: {proc.communicate()}")
        return _get(f"{base}/health")[0] == 200

    wait_sync(healthy, timeout=60, what="the scheduler's /health")
    _, body = _get(f"{base}/health")
    assert body["database"] == "ok"
    assert body["scheduler"]["status"] == "ok"
    assert _get(f"{base}/livez") == (200, {"status": "ok"})
    assert _get(f"{base}/nope")[0] == 404
    checked = run_cli("health", "scheduler", env=env)
    assert checked.returncode == 0, checked.stderr
    assert run_cli("health", env=env).returncode == 0, "auto: HEALTH_PORT when set"

    pg_server.drop_database(database_url)  # the database goes away under the running process

    def unhealthy() -> bool:
        return _get(f"{base}/health")[0] == 503

    wait_sync(unhealthy, timeout=60, what="/health to report the lost database")
    _, body = _get(f"{base}/health")
    assert body["status"] == "unavailable"
    assert body["database"] == "unreachable"
    assert _get(f"{base}/livez")[0] == 200, "alive: a database outage must not restart it"
    failed = run_cli("health", "scheduler", env=env)
    assert failed.returncode == 1
    assert "503" in failed.stderr


def test_health_command_fails_when_nothing_answers() -> None:
    env = cli_env(PORT=str(free_port()))
    done = run_cli("health", "api", "--timeout", "2", env=env)
    assert done.returncode == 1
    assert "nothing answers" in done.stderr
    needs_port = run_cli("health", "planner", env=env)
    assert needs_port.returncode == 2
    assert "HEALTH_PORT" in needs_port.stderr


def test_health_check_loads_only_the_standard_library() -> None:
    """Containers run it every few seconds: the full CLI costs seconds of CPU to import.
    (Names starting with _ are interpreter start-up hooks, such as setuptools' .pth shim.)"""
    import subprocess
    import sys

    code = (
        "import sys, cronicorn.healthcheck, cronicorn.entry; "
        "top = {m.split('.')[0] for m in sys.modules if not m.startswith('_')}; "
        "print(sorted(top - set(sys.stdlib_module_names)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['cronicorn']"
