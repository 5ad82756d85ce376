"""Shared test infrastructure: one PostgreSQL for the whole run, one database per test.

With no TEST_DATABASE_URL, an embedded server under a per-checkout temp home is shared by every
pytest process (xdist workers and helpers alike) through the same reference counting the CLI
uses. The schema is migrated once into a template database named after a hash of the schema
sources; each test gets `CREATE DATABASE … TEMPLATE …`, so tests are isolated and parallel.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.config import Settings
from cronicorn.embedded import EmbeddedPostgres
from cronicorn.store.db import make_async_engine
from cronicorn.store.migrate import MIGRATIONS_DIR, upgrade
from support import reap_started

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_SOURCES = [ROOT / "src/cronicorn/store/tables.py", *sorted(MIGRATIONS_DIR.rglob("*.py"))]

# Tests must never pick up an operator's settings from the environment or a .env file: every
# setting's variable is cleared, and Settings built in this process read no .env.
for _field in Settings.model_fields.values():
    if _field.alias:
        os.environ.pop(_field.alias, None)
Settings.model_config["env_file"] = None


def _schema_hash() -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for path in SCHEMA_SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (query string kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _thread(job: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix=f"test-databases-{job}")


@dataclass
class PgServer:
    """Databases are made and dropped on threads of their own: the next test's database is
    copied from the template while this test runs, and a finished test's is dropped after
    it, so neither is on a test's clock (together 0.1-0.7 s a test on a busy machine)."""

    admin_url: str  # a maintenance database on the server
    template: str
    _ahead: ThreadPoolExecutor = field(default_factory=lambda: _thread("create"), repr=False)
    _behind: ThreadPoolExecutor = field(default_factory=lambda: _thread("drop"), repr=False)
    _next: Future[str] | None = field(default=None, repr=False)
    _drops: list[Future[None]] = field(default_factory=list, repr=False)

    def create_database(self) -> str:
        """A fresh copy of the migrated template; the one after it starts at once."""
        ready = self._next or self._ahead.submit(self._create)
        self._next = self._ahead.submit(self._create)
        return ready.result()

    def drop_database(self, url: str) -> None:
        """Queued: nothing reuses a test database's (random) name."""
        self._drops = [f for f in self._drops if not f.done() or f.exception()]
        self._drops.append(self._behind.submit(self._drop, url))

    def close(self) -> None:
        """Drop the spare and wait for every queued drop; fail if one failed."""
        if self._next is not None:
            with contextlib.suppress(Exception):
                self.drop_database(self._next.result())
        self._ahead.shutdown(wait=True)
        self._behind.shutdown(wait=True)
        errors = [f.exception() for f in self._drops if f.exception()]
        assert not errors, f"test databases left behind: {errors}"

    def _create(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return with_database(self.admin_url, name)

    def _drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def empty_database(self) -> str:
        """A database with no schema at all (for migration tests)."""
        name = f"e_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return with_database(self.admin_url, name)


def _test_home() -> Path:
    tag = hashlib.sha1(str(ROOT).encode(), usedforsecurity=False).hexdigest()[:8]
    return Path(f"/tmp/cronicorn-tests-{os.geteuid()}-{tag}")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_template(admin_url: str, lock_path: Path) -> str:
    template = f"tpl_{_schema_hash()}"
    with _file_lock(lock_path), psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (template,)
        ).fetchone()
        if not exists:
            building = f"{template}_build"
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{building}"')
            upgrade(with_database(admin_url, building))
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
    return template


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make `--dist loadgroup` keep each `xdist_group` on one worker. pytest-xdist 3.8 tags a
    grouped test by setting `item._nodeid`, which pytest 9 no longer reads (the id lives in
    `item._id`): every group was silently spread over both workers, so module fixtures (a
    managed server, a shared `up`) started once per worker. Does nothing once xdist does it."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers only
        return
    from _pytest.nodeid import NodeId

    for item in items:
        marks = item.iter_markers("xdist_group")
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks}
        if names and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(names))}")
    _slow_modules_first(items)


def _slow_modules_first(items: list[pytest.Item]) -> None:
    """Hand out the modules with `slow` tests first (xdist deals ungrouped tests in this
    order): the run then ends on short tests and both workers finish together, instead of
    one idling while the other runs a 20 s test (the browser tests came last). A module's
    tests stay together, so its module fixtures still start once per worker."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        lock = Path(f"/tmp/cronicorn-tests-{os.geteuid()}-external.lock")
        server = PgServer(admin_url=external, template=_ensure_template(external, lock))
        try:
            yield server
        finally:
            server.close()
        return
    home = _test_home()
    embedded = EmbeddedPostgres(home)
    with embedded.session():
        admin = embedded.url("postgres")
        _disposable(admin)
        server = PgServer(admin_url=admin, template=_ensure_template(admin, home / "template.lock"))
        try:
            yield server
        finally:
            server.close()


def _disposable(admin_url: str) -> None:
    """The tests' own server holds nothing worth a flush to disk: every commit, CREATE
    DATABASE and DROP DATABASE of a test would otherwise wait on fsync. Commits stay visible
    to other sessions at once; only a crash of this server (no test crashes it) could lose
    data. Servers that tests crash on purpose are their own (`embedded_home`)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {name} = off")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def database_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, migrated database for this test alone (libpq URL)."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        reap_started()  # a CLI process a failed test left would hold the database open
        pg_server.drop_database(url)


@pytest.fixture(autouse=True)
def _reap_cli_processes() -> Iterator[None]:
    yield
    reap_started()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(database_url, pool_size=5, max_overflow=5)
    try:
        yield eng
    finally:
        await eng.dispose()
