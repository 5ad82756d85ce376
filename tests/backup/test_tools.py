"""Finding pg_dump & co.: PATH first for external servers, the wheel's when it fits, and a
clear message naming what to install when only older tools exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronicorn.backup.errors import BackupError, ToolError
from cronicorn.backup.pg import database_name, scrub
from cronicorn.backup.tools import ToolFinder, bundled_bin_dir


def _fake(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    path.chmod(0o755)
    return path


def test_an_old_pg_dump_on_path_is_refused_naming_what_to_install(tmp_path: Path) -> None:
    _fake(tmp_path / "bin", "pg_dump", "15.4 (Debian 15.4-1)")
    finder = ToolFinder(search_path=str(tmp_path / "bin"), bundled_dir=None)
    with pytest.raises(ToolError) as caught:
        finder.find("pg_dump", at_least=18)
    message = str(caught.value)
    assert "pg_dump 15.4" in message
    assert "older than PostgreSQL 18" in message
    assert "postgresql-client-18" in message


def test_missing_tools_name_the_package(tmp_path: Path) -> None:
    finder = ToolFinder(search_path=str(tmp_path), bundled_dir=None)
    with pytest.raises(ToolError, match=r"pg_restore not found: install .*postgresql-client-17"):
        finder.find("pg_restore", at_least=17)


def test_path_wins_when_recent_enough_else_the_wheel(tmp_path: Path) -> None:
    bundled = bundled_bin_dir()
    assert bundled is not None
    recent = _fake(tmp_path / "new", "pg_dump", "19.0")
    tool = ToolFinder(search_path=str(tmp_path / "new"), bundled_dir=bundled).find(
        "pg_dump", at_least=18
    )
    assert tool.path == recent
    assert tool.major == 19
    _fake(tmp_path / "old", "pg_dump", "14.2")
    tool = ToolFinder(search_path=str(tmp_path / "old"), bundled_dir=bundled).find(
        "pg_dump", at_least=18
    )
    assert tool.path == bundled / "pg_dump", "the wheel's fits the server: use it"


def test_embedded_prefers_the_wheel(tmp_path: Path) -> None:
    _fake(tmp_path / "bin", "psql", "99.0")
    finder = ToolFinder(search_path=str(tmp_path / "bin"), prefer_bundled=True)
    assert finder.find("psql", at_least=18).path == bundled_bin_dir() / "psql"  # type: ignore[operator]


def test_a_binary_that_does_not_answer_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "bin" / "pg_dump"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    finder = ToolFinder(search_path=str(broken.parent), bundled_dir=None)
    with pytest.raises(ToolError, match="did not report a PostgreSQL version"):
        finder.find("pg_dump", at_least=18)


def _fake_libpq(directory: Path, name: str, version: str, *, tls: bool) -> Path:
    """A client that answers --version and, asked for sslmode=require, fails as a libpq
    built without TLS does (or as a refused connection, when it has TLS)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    refusal = (
        'sslmode value \\"require\\" invalid when SSL support is not compiled in'
        if not tls
        else "connection to server failed: Connection refused"
    )
    path.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --version ]; then echo "{name} (PostgreSQL) {version}"; exit 0; fi\n'
        f'echo "{name}: error: {refusal}" >&2; exit 2\n'
    )
    path.chmod(0o755)
    return path


def test_when_tls_is_required_only_tools_that_speak_it_are_used(tmp_path: Path) -> None:
    plain = _fake_libpq(tmp_path / "plain", "pg_dump", "18.1", tls=False)
    secure = _fake_libpq(tmp_path / "secure", "pg_dump", "18.1", tls=True)
    finder = ToolFinder(search_path=str(plain.parent), bundled_dir=None, system_dirs=[])
    assert finder.find("pg_dump", at_least=18).path == plain, "no TLS asked: fine"
    with pytest.raises(ToolError) as caught:
        finder.find("pg_dump", at_least=18, tls=True)
    message = str(caught.value)
    assert "has no TLS support" in message
    assert "postgresql-client-18" in message
    assert "\n" not in message, "one line"
    both = ToolFinder(search_path=str(plain.parent), bundled_dir=None, system_dirs=[secure.parent])
    assert both.find("pg_dump", at_least=18, tls=True).path == secure


def test_the_bundled_tools_have_no_tls_and_are_refused_for_it(tmp_path: Path) -> None:
    bundled = bundled_bin_dir()
    assert bundled is not None
    finder = ToolFinder(search_path=str(tmp_path), bundled_dir=bundled, system_dirs=[])
    with pytest.raises(ToolError, match="has no TLS support"):
        finder.find("psql", at_least=1, tls=True)


def test_passwords_are_scrubbed_from_messages() -> None:
    libpq = 'missing "=" after "postgresql+psycopg://app:hunter2@db/x" in connection info string'
    assert "hunter2" not in scrub(libpq)
    assert "app:***@db" in scrub(libpq)
    assert scrub("host=db password='two words' user=app") == "host=db password=*** user=app"
    assert "s3cr%t" not in scrub("auth failed: s3cr%t", "postgresql://app:s3cr%25t@db/x")
    with pytest.raises(BackupError) as caught:
        database_name("postgresql+psycopg://app:hunter2@db/x")
    assert "hunter2" not in str(caught.value)
    assert "postgresql://" in str(caught.value), "says what a valid URL looks like"
