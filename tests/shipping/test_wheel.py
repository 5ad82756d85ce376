"""The wheel holds everything Cronicorn needs at run time: built with `python -m build`,
installed into a fresh virtualenv outside the repository (no network: the dependencies come
from this project's virtualenv through a .pth line, the wheel itself with --no-deps), and
`cronicorn up` from it reaches a healthy /api/health on its embedded PostgreSQL and serves
its packaged pages, templates, assets and docs. A new user then follows the README against
it: the health check answers as shown and the "first scheduled endpoint" block works.
One `up` for the whole module: it is the expensive part."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipping.shipping_support import ROOT, bash_blocks
from support import cli_env, free_port, wait_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400), pytest.mark.xdist_group("wheel")]

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
README = (ROOT / "README.md").read_text()


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300, cwd=cwd)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done


def _get(url: str, key: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"x-api-key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


@dataclass
class Installed:
    place: Path
    wheel: Path
    venv: Path

    @property
    def cli(self) -> Path:
        return self.venv / "bin" / "cronicorn"


@dataclass
class Running:
    installed: Installed
    env: dict[str, str]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    """Built and installed outside the repository and pytest's tmp_path (the embedded server
    runs as another user when root and must traverse the path)."""
    place = Path(tempfile.mkdtemp(prefix="cronicorn-wheel-"))
    place.chmod(0o755)
    try:
        dist = place / "dist"
        _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dist), str(ROOT))
        (wheel,) = dist.glob("cronicorn-*.whl")
        venv = place / "venv"
        _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
        python = str(venv / "bin" / "python")
        purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
        # Dependencies from this project's virtualenv, appended after the new site-packages;
        # .pth files inside it (the editable install's) are not run.
        Path(purelib.stdout.strip(), "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
        pip = [sys.executable, "-m", "pip", "--python", python]
        _run(*pip, "install", "--no-deps", "--no-index", str(wheel))
        yield Installed(place, wheel, venv)
    finally:
        shutil.rmtree(place, ignore_errors=True)


@pytest.fixture(scope="module")
def running(installed: Installed) -> Iterator[Running]:
    port = free_port()
    home = installed.place / "home"
    env = cli_env(CRONICORN_HOME=str(home), HOST="127.0.0.1", PORT=str(port))
    env.pop("PYTHONPATH", None)
    app = subprocess.Popen(
        [str(installed.cli), "up"],
        env=env,
        cwd=installed.place,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    state = Running(installed, env, port)
    try:

        def healthy() -> bool:
            if app.poll() is not None:
                raise AssertionError(f"cronicorn up exited: {app.communicate()}")
            return _get(f"{state.base}/api/health")[0] == 200

        wait_sync(healthy, timeout=150, what="cronicorn up from the wheel to be healthy")
        yield state
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            app.kill()
            app.communicate()
        stop = [str(installed.cli), "db", "stop", "--force"]
        subprocess.run(stop, env=env, capture_output=True, check=False, timeout=60)
    assert app.returncode == 0


def test_wheel_holds_what_runs_need(installed: Installed) -> None:
    assert installed.wheel.name.startswith(f"cronicorn-{VERSION}-")
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for needed in (
        "cronicorn/store/migrations/env.py",
        "cronicorn/web/templates/device.html",
        "cronicorn/api/reference/index.html",
        "cronicorn/_docs/mkdocs.yml",
        "cronicorn/_docs/docs_hooks.py",
        "cronicorn/_docs/docs/architecture.md",
        "cronicorn/_docs/.env.example",
    ):
        assert needed in names, needed
    versions = ROOT / "src" / "cronicorn" / "store" / "migrations" / "versions"
    for migration in versions.glob("0*.py"):
        assert f"cronicorn/store/migrations/versions/{migration.name}" in names
    static = ROOT / "src" / "cronicorn" / "web" / "static"
    for asset in static.rglob("*"):
        if asset.is_file() and "__pycache__" not in asset.parts:
            assert f"cronicorn/web/static/{asset.relative_to(static)}" in names, asset


def test_installed_outside_the_repo(installed: Installed) -> None:
    assert _run(str(installed.cli), "--version", cwd=installed.place).stdout.strip() == VERSION
    where = _run(
        str(installed.venv / "bin" / "python"),
        "-c",
        "import cronicorn, cronicorn.docs_site as d; print(cronicorn.__file__, d.docs_root())",
        cwd=installed.place,
    ).stdout.split()
    assert all(Path(p).is_relative_to(installed.venv) for p in where), where
    assert (Path(where[1]) / "self-hosting" / "backup-restore.md").is_file()


def test_up_from_the_wheel_serves_pages_and_assets(running: Running) -> None:
    health = json.loads(_get(f"{running.base}/api/health")[1])
    assert health["version"] == VERSION
    assert health["migrations"] == "current"
    status, page = _get(f"{running.base}/")  # the dashboard (its sign-in page when signed out)
    assert status == 200, page[:500]
    assert "<html" in page.lower()
    assets = re.findall(r'(?:href|src)="(/[^"?]+\.(?:css|js))', page)
    assert assets, "the dashboard links its stylesheet and scripts"
    for asset in assets:
        assert _get(f"{running.base}{asset}")[0] == 200, asset  # packaged static files
    assert _get(f"{running.base}/device")[0] == 200  # a packaged template
    status, reference = _get(f"{running.base}/api/reference")  # packaged assets of the API
    assert status == 200
    assert "<html" in reference.lower()


def _readme_block(marker: str) -> str:
    (block,) = [b for b in bash_blocks(README) if marker in b]
    return block


def _sh(script: str, running: Running) -> str:
    script = script.replace("localhost:3333", f"127.0.0.1:{running.port}")
    script = script.replace(".venv/bin/cronicorn", str(running.installed.cli))
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        env=running.env,
        cwd=running.installed.place,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_quick_start(running: Running) -> None:
    """`make run` is `cronicorn up`; then the README's own commands, as written."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:.*\n\t.*\$\(BIN\)/cronicorn up$", makefile, re.M)
    check = _readme_block("curl http://localhost:3333/api/health\n# {")
    shown = json.loads(check.split("# ", 1)[1].replace("{…}", "{}"))
    health = json.loads(_sh(check, running))
    assert set(shown) <= set(health)
    assert health["status"] == shown["status"] == "ok"

    first = _readme_block("KEY=$(.venv/bin/cronicorn apikey create")
    created = _sh(first + '\necho\necho "KEY=$KEY"\n', running).splitlines()
    endpoint, key = json.loads(created[-2]), created[-1].removeprefix("KEY=")
    assert endpoint["name"] == "build report"
    assert endpoint["baselineIntervalMs"] == 60000
    url = f"{running.base}/api/endpoints/{endpoint['id']}/preview?count=5"
    status, body = _get(url, key)
    assert status == 200, body
    assert len(json.loads(body)["runs"]) == 5
