"""The wheel holds everything Cronicorn needs at run time: built with `python -m build`,
installed into a fresh virtualenv outside the repository (no network: the dependencies come
from this project's virtualenv through a .pth line, the wheel itself with --no-deps), and
`cronicorn up` from it reaches a healthy /api/health on its embedded PostgreSQL, serves its
packaged pages and assets, and finds its packaged docs."""

from __future__ import annotations

import json
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
from pathlib import Path

import pytest

from shipping.shipping_support import ROOT
from support import cli_env, free_port, wait_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300, cwd=cwd)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


@pytest.fixture(scope="module")
def place() -> Iterator[Path]:
    """Outside the repository and pytest's tmp_path (the embedded server runs as another user
    when root and must traverse the path)."""
    path = Path(tempfile.mkdtemp(prefix="cronicorn-wheel-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_wheel_installs_and_runs_outside_the_repo(place: Path) -> None:
    dist = place / "dist"
    _run(
        sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)
    )
    (wheel,) = dist.glob("cronicorn-*.whl")
    assert wheel.name.startswith(f"cronicorn-{VERSION}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "cronicorn/store/migrations/env.py",
        "cronicorn/web/templates/device.html",
        "cronicorn/api/reference/index.html",
        "cronicorn/_docs/mkdocs.yml",
        "cronicorn/_docs/docs/architecture.md",
        "cronicorn/_docs/.env.example",
    ):
        assert needed in names, needed
    assert any(n.startswith("cronicorn/store/migrations/versions/0001") for n in names)

    venv = place / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    purelib = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    # Dependencies from this project's virtualenv (appended after the new site-packages, and
    # its own .pth files, such as the editable install's, are not run).
    Path(purelib.stdout.strip(), "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        str(wheel),
    )

    cli = venv / "bin" / "cronicorn"
    assert _run(str(cli), "--version", cwd=place).stdout.strip() == VERSION
    where = _run(
        str(python),
        "-c",
        "import cronicorn, cronicorn.docs_site as d; print(cronicorn.__file__, d.docs_root())",
        cwd=place,
    ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    assert (Path(where[1]) / "self-hosting" / "backup-restore.md").is_file()

    port = free_port()
    env = cli_env(CRONICORN_HOME=str(place / "home"), HOST="127.0.0.1", PORT=str(port))
    env.pop("PYTHONPATH", None)
    app = subprocess.Popen(
        [str(cli), "up"],
        env=env,
        cwd=place,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if app.poll() is not None:
                raise AssertionError(f"cronicorn up exited: {app.communicate()}")
            return _get(f"{base}/api/health")[0] == 200

        wait_sync(healthy, timeout=120, what="cronicorn up from the wheel to be healthy")
        health = json.loads(_get(f"{base}/api/health")[1])
        assert health["version"] == VERSION
        assert health["migrations"] == "current"
        status, page = _get(f"{base}/")  # the dashboard (or the API reference until it exists)
        assert status == 200, page[:500]
        assert "<html" in page.lower()
        status, device = _get(f"{base}/device")  # a packaged template
        assert status == 200, device[:500]
        status, reference = _get(f"{base}/api/reference")  # packaged static assets
        assert status == 200
        assert "<html" in reference.lower()
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            app.kill()
            app.communicate()
        subprocess.run(
            [str(cli), "db", "stop", "--force"],
            env=env,
            cwd=place,
            capture_output=True,
            check=False,
        )
    assert app.returncode == 0
