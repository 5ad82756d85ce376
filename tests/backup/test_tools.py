"""Finding pg_dump & co.: PATH first for external servers, the wheel's when it fits, and a
clear message naming what to install when only older tools exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronicorn.backup.errors import ToolError
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
