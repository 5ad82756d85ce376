"""`cronicorn docs`: serve the documentation site (the compose stack's `docs` service).

Serves the site the wheel or image shipped (`cronicorn/_site`), a directory given with
`--site`, or builds one from the packaged pages with MkDocs first (`pip install
mkdocs-material`). Static files from one small threaded server: the docs need nothing else.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import typer

from cronicorn.commands.common import fail, friendly, load_cli_settings, out
from cronicorn.docs_site import built_site, docs_project
from cronicorn.serve import install_sigterm


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return  # access logs are noise for a docs server


def build(out_dir: Path) -> Path:
    """Build the site with MkDocs into out_dir (strict: a broken link fails the build)."""
    project = docs_project()
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        fail("no built site here and MkDocs is missing: pip install mkdocs-material, or --site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
    command += ["-f", str(project / "mkdocs.yml"), "-d", str(out_dir)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        fail(f"the docs did not build: {done.stderr.strip()[-2000:]}")
    return out_dir


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly()
    def docs(
        host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),
        port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
        site: Path | None = typer.Option(None, "--site", help="Serve this built site."),
        rebuild: bool = typer.Option(False, "--build", help="Build from the pages first."),
    ) -> None:
        """Serve the documentation site (http://HOST:PORT/)."""
        install_sigterm()
        root = site or (None if rebuild else built_site())
        if root is None:
            root = build(load_cli_settings().home / "site")
        if not (root / "index.html").is_file():
            fail(f"{root} holds no built site (index.html); build it with `cronicorn docs --build`")
        handler = functools.partial(_Quiet, directory=str(root))
        try:
            server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror}; pass --port")
        out.print(f"Cronicorn docs on http://{host}:{port}/ (from {root})", highlight=False)
        try:
            server.serve_forever()
        finally:
            server.server_close()
