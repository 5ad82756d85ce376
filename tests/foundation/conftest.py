"""Fixtures for tests that run their own embedded PostgreSQL."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronicorn.embedded import EmbeddedError, EmbeddedPostgres


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A CRONICORN_HOME of this test's own, outside pytest's tmp_path: as root the server runs
    as `cronicorn_pg`, which must traverse the path, and any other pytest session starting
    meanwhile resets /tmp/pytest-of-root to 0700. The server is stopped at the end even when
    the test failed (it runs in its own session, so killing the CLI leaves it up)."""
    home = Path(tempfile.mkdtemp(prefix="cronicorn-test-")) / "home"
    try:
        yield home
    finally:
        with contextlib.suppress(EmbeddedError):
            EmbeddedPostgres(home).stop(force=True)
        shutil.rmtree(home.parent, ignore_errors=True)


def postmaster_pid(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
