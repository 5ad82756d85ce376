"""Static files (our CSS and script, the vendored htmx and uPlot) under content-hash URLs.

`/static/<hash>/<name>`: the hash is the file's SHA-256 prefix, so a URL never changes meaning
and the browser may cache it for a year; a new release changes the hash, hence the URL. A
request with a stale hash still gets the current file, but uncached (a page rendered before an
upgrade keeps working). Files are read once per process.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

STATIC_DIR = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

router = APIRouter()


@dataclass(frozen=True)
class Asset:
    body: bytes
    digest: str
    media_type: str


@functools.cache
def asset(name: str) -> Asset | None:
    """The file under `static/` (no escaping it: only names found by the walk are served)."""
    path = _files().get(name)
    if path is None:
        return None
    body = path.read_bytes()
    media = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
    return Asset(body, hashlib.sha256(body).hexdigest()[:12], media)


@functools.cache
def _files() -> dict[str, Path]:
    return {
        p.relative_to(STATIC_DIR).as_posix(): p
        for p in STATIC_DIR.rglob("*")
        if p.is_file() and not p.name.endswith(".md")
    }


def static_url(name: str) -> str:
    """The cache-busted URL of a static file (a template global)."""
    found = asset(name)
    if found is None:
        raise LookupError(f"no static file {name!r}")
    return f"/static/{found.digest}/{name}"


@router.get("/static/{digest}/{name:path}", include_in_schema=False)
async def static_file(digest: str, name: str) -> Response:
    found = asset(name)
    if found is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    cache = IMMUTABLE if digest == found.digest else "no-cache"
    return Response(found.body, media_type=found.media_type, headers={"cache-control": cache})
