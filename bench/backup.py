"""Backup benchmark: `backup create` against raw `pg_dump -Fc`, and verify/restore against
raw `pg_restore`, on a database of about 1 GB.

Builds (once; reused while its home exists) an embedded PostgreSQL under --home with one user,
1,000 jobs, 10,000 endpoints and millions of runs (INSERT … SELECT generate_series) until the
database reaches --target-gb. Then times, alternating so neither side always runs on a warm
cache:

* `create`      cronicorn.backup.create_backup (snapshot, counts, pg_dump -Fc piped, sha256)
* `pg_dump`     pg_dump -Fc -f FILE, the wheel's binary, nothing else
* `verify`      cronicorn.backup.verify_backup (checksums + restore into a scratch db + counts)
* `restore`     cronicorn.backup.restore_backup into another database, no safety backup
* `pg_restore`  pg_restore --no-owner --no-acl -d NEWDB FILE

    .venv/bin/python bench/backup.py [--home /tmp/cronicorn-bench-backup] [--target-gb 1.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psycopg

from cronicorn.backup import pg
from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import Created, create_backup
from cronicorn.backup.restore import RestoreOptions, restore_backup
from cronicorn.backup.tools import ToolFinder
from cronicorn.backup.verify import verify_backup
from cronicorn.embedded import EmbeddedPostgres
from cronicorn.store.migrate import upgrade

BATCH = 500_000


def build(url: str, target_bytes: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT count(*) FROM users").fetchone() == (0,):
            conn.execute("INSERT INTO users (id, email) VALUES ('bench', 'bench@example.com')")
            conn.execute(
                "INSERT INTO jobs (id, user_id, name) SELECT 'job-' || g, 'bench', 'job ' || g "
                "FROM generate_series(1, 1000) g"
            )
            conn.execute(
                "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, "
                "next_run_at) SELECT 'ep-' || g, 'job-' || (g % 1000 + 1), 'bench', 'ep ' || g, "
                "'https://example.com/hook/' || g, 60000, now() FROM generate_series(1, 10000) g"
            )
        while (size := _size(conn)) < target_bytes:
            start = int(str(conn.execute("SELECT count(*) FROM runs").fetchone()[0]))  # type: ignore[index]
            print(f"  database {size / 1e9:.2f} GB, runs {start:,}; adding {BATCH:,} runs")
            conn.execute(
                "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at, due_at, "
                "finished_at, duration_ms, status_code, response_body, response_size) "
                "SELECT 'run-' || g, 'ep-' || (g %% 10000 + 1), 'bench', "
                "CASE WHEN g %% 17 = 0 THEN 'failed' ELSE 'success' END, 'baseline-interval', "
                "now() - g * interval '1 second', now() - g * interval '1 second', "
                "now() - g * interval '1 second' + (g %% 900) * interval '1 ms', g %% 900, "
                "CASE WHEN g %% 17 = 0 THEN 500 ELSE 200 END, "
                "jsonb_build_object('ok', g %% 17 <> 0, 'queue', g %% 97, 'id', md5(g::text)), 64 "
                "FROM generate_series(%s, %s) g",
                (start + 1, start + BATCH),
            )
        conn.execute("VACUUM ANALYZE")
        print(f"  database {_size(conn) / 1e9:.2f} GB, ready")


def _size(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    return int(str(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]))  # type: ignore[index]


def raw_dump(server: EmbeddedPostgres, url: str, path: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [str(server.tool("pg_dump")), "-Fc", "-f", str(path), "-d", url], env=env, check=True
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/cronicorn-bench-backup"))
    parser.add_argument("--target-gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = EmbeddedPostgres(args.home)
    with server.session():
        url = server.url()
        upgrade(url)
        print(f"building the database under {args.home} …")
        build(url, int(args.target_gb * 1e9))
        run(url, server, args.home / "bench-out", args.repeat)


def run(url: str, server: EmbeddedPostgres, out: Path, repeat: int) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ctx = BackupContext(
        database_url=url, backup_dir=out / "backups", finder=ToolFinder(prefer_bundled=True)
    )
    env = {**os.environ, **server.env()}
    results: dict[str, list[float]] = {k: [] for k in ("create", "pg_dump")}
    sizes: dict[str, int] = {}
    last: Created | None = None
    for i in range(repeat):
        raw = out / f"raw-{i}.dump"
        order = ["create", "pg_dump"] if i % 2 == 0 else ["pg_dump", "create"]
        for what in order:
            if what == "pg_dump":
                results[what].append(timed(partial(raw_dump, server, url, raw, env)))
                sizes["pg_dump"] = raw.stat().st_size
            else:
                start = time.perf_counter()
                last = create_backup(ctx)
                results[what].append(time.perf_counter() - start)
                sizes["create"] = last.manifest.size_bytes
        create_s, dump_s = results["create"][-1], results["pg_dump"][-1]
        print(f"  round {i + 1}: create {create_s:.1f}s, pg_dump {dump_s:.1f}s")
    assert last is not None
    name = last.name
    results["verify"] = [timed(lambda: verify_backup(ctx, name))]
    target = "bench_restored"
    opts = RestoreOptions(safety_backup=False, target_db=target, force=True)
    results["restore"] = [timed(lambda: restore_backup(ctx, name, opts))]
    pg.drop_database(url, target)
    pg.create_database(url, target)
    restore = [
        str(server.tool("pg_restore")),
        "--no-owner",
        "--no-acl",
        "-d",
        pg.with_database(url, target),
        str(out / "raw-0.dump"),
    ]
    results["pg_restore"] = [timed(lambda: subprocess.run(restore, env=env, check=True))]
    pg.drop_database(url, target)
    report(results, sizes)


def report(results: dict[str, list[float]], sizes: dict[str, int]) -> None:
    print()
    print(f"{'step':<12}{'median s':>10}{'min s':>9}{'runs':>6}")
    for step, times in results.items():
        print(f"{step:<12}{statistics.median(times):>10.2f}{min(times):>9.2f}{len(times):>6}")
    ratio = statistics.median(results["create"]) / statistics.median(results["pg_dump"])
    print(f"\ncreate / pg_dump = {ratio:.3f} (target <= 1.10)")
    create_mb, dump_mb = sizes["create"] / 1e6, sizes["pg_dump"] / 1e6
    print(f"dump sizes: create {create_mb:.1f} MB, pg_dump {dump_mb:.1f} MB")
    verdict = "restore / pg_restore = "
    print(verdict + f"{results['restore'][0] / results['pg_restore'][0]:.3f}")


if __name__ == "__main__":
    main()
