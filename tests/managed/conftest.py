"""Fixtures: one managed-like server per database name (`cronicorn`, and `postgres` as on
Supabase), migrated and seeded through the application role over verify-full TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.backup_support import seed
from cronicorn.store.migrate import upgrade
from managed.managed_server import ManagedServer, managed_server, server_bin_dir
from support import free_port


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one worker")


# One xdist group per server: each worker starts one server and runs its tests, so the two
# scenarios run side by side instead of one after the other on a single worker.
SCENARIOS = [
    pytest.param(name, marks=pytest.mark.xdist_group(f"managed-{name}"))
    for name in ("cronicorn", "postgres")
]


@pytest.fixture(scope="module", params=SCENARIOS)
def server(request: pytest.FixtureRequest) -> Iterator[ManagedServer]:
    if server_bin_dir() is None:
        pytest.skip(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install "
            "postgresql; .ci/run installs it)"
        )
    with managed_server(str(request.param), free_port()) as running:
        upgrade(running.url())
        seed(running.url())
        yield running


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"
