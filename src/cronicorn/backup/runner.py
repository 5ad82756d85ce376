"""Running pg_dump, pg_restore and psql as child processes, streaming their data.

pg_dump writes to a pipe that we hash and write ourselves (one pass: no second read to
checksum, progress as bytes arrive, and the file-sink seam sees every byte). Loading feeds
psql from a gunzip stream, like the seed's `gunzip -c … | psql`.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import subprocess
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cronicorn.backup.errors import BackupError, ToolError
from cronicorn.backup.files import CHUNK, HashingWriter
from cronicorn.backup.manifest import Format
from cronicorn.backup.pg import scrub
from cronicorn.backup.tools import Tool

_TABLE_LINE = re.compile(r'dumping contents of table "(?:[^"]+\.)?([^"]+)"')


@dataclass(frozen=True)
class DumpJob:
    tool: Tool
    conninfo: str
    env: dict[str, str]
    fmt: Format
    snapshot: str | None = None
    exclude_schemas: tuple[str, ...] = ()


@dataclass
class _Stderr:
    """Collects a child's stderr in a thread: the last lines for error messages."""

    stream: IO[bytes]
    on_line: Callable[[str], None] = lambda _line: None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self.on_line(line)
            self.tail.append(line)

    def reason(self) -> str:
        self.thread.join(timeout=10)
        lines = [line for line in self.tail if line.strip()]
        errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
        return scrub((errors or lines or ["no output"])[-1])


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def _watch(proc: subprocess.Popen[bytes], cancel: threading.Event | None) -> None:
    if cancel is None:
        return

    def watcher() -> None:
        while proc.poll() is None:
            if cancel.wait(0.2):
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                return

    threading.Thread(target=watcher, daemon=True).start()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def run_dump(
    job: DumpJob,
    writer: HashingWriter,
    *,
    on_table: Callable[[str], None] = lambda _name: None,
    on_bytes: Callable[[int], None] = lambda _size: None,
    cancel: threading.Event | None = None,
) -> None:
    """Stream `pg_dump` into `writer` (gzip-compressed for the plain SQL format)."""
    args = [str(job.tool.path), "--dbname", job.conninfo, "--verbose", "--no-comments"]
    if job.snapshot:
        args += ["--snapshot", job.snapshot]
    # Schema public only: the provider's schemas and extensions (Supabase: auth, storage,
    # pg_graphql…) are neither ours to restore nor creatable by the owner role or in a
    # scratch server. `--extension=plpgsql` selects no extension beyond the built-in one.
    args += [
        f'--exclude-schema="{name.replace(chr(34), chr(34) * 2)}"' for name in job.exclude_schemas
    ]
    if job.tool.major >= 14:
        args += ["--extension=plpgsql"]
    if job.fmt == "custom":
        args += ["--format=custom"]
    else:
        args += ["--format=plain", "--no-owner", "--no-acl"]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_child_env(job.env),
        bufsize=0,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None

    def table_line(line: str) -> None:
        if match := _TABLE_LINE.search(line):
            on_table(match.group(1))

    stderr = _Stderr(proc.stderr, table_line)
    _watch(proc, cancel)
    gz = zlib.compressobj(6, zlib.DEFLATED, 31) if job.fmt == "sql-gz" else None
    try:
        while chunk := proc.stdout.read(CHUNK):
            data = gz.compress(chunk) if gz is not None else chunk
            if data:
                writer.write(data)
                on_bytes(writer.size)
        if gz is not None:
            writer.write(gz.flush())
    except BaseException:
        _stop(proc)
        raise
    code = proc.wait()
    if cancel is not None and cancel.is_set():
        raise BackupError("the backup was cancelled (shutdown); nothing was kept")
    if code != 0:
        raise ToolError(f"pg_dump failed (exit {code}): {stderr.reason()}")


def load_script(
    dump: Path,
    fmt: Format,
    psql: Tool,
    pg_restore: Tool | None,
    conninfo: str,
    env: dict[str, str],
    *,
    preamble: bytes,
    epilogue: bytes,
) -> None:
    """Feed psql `preamble`, the dump as SQL, then `epilogue` (the COMMIT).

    The epilogue is sent only after the whole dump was read without error; on any failure
    psql is killed first, so it never sees the COMMIT and PostgreSQL rolls back. A custom
    archive is turned into SQL by `pg_restore -f -` (no connection of its own)."""
    args = [str(psql.path), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", conninfo, "-f", "-"]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_child_env(env),
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    stderr = _Stderr(proc.stderr)
    try:
        proc.stdin.write(preamble)
        if fmt == "custom":
            assert pg_restore is not None
            _pipe_archive(proc, pg_restore, dump)
        else:
            _pipe_gunzip(proc, dump)
        proc.stdin.write(epilogue)
        proc.stdin.close()
        code = proc.wait()
    except BrokenPipeError:
        code = proc.wait()  # psql stopped (ON_ERROR_STOP): its status and stderr say why
        if code == 0:
            code = 1
    except BaseException:
        _stop(proc)
        raise
    if code != 0:
        raise ToolError(f"{psql.name} failed (exit {code}): {stderr.reason()}")


def _pipe_archive(proc: subprocess.Popen[bytes], tool: Tool, dump: Path) -> None:
    assert proc.stdin is not None
    args = [str(tool.path), "--no-owner", "--no-acl", "-f", "-", str(dump)]
    source = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert source.stdout is not None
    assert source.stderr is not None
    errors = _Stderr(source.stderr)
    try:
        while chunk := source.stdout.read(CHUNK):
            proc.stdin.write(chunk)
    except BaseException:
        _stop(source)
        raise
    if source.wait() != 0:
        _stop(proc)
        raise ToolError(f"{tool.name} could not read {dump.name}: {errors.reason()}")


def _pipe_gunzip(proc: subprocess.Popen[bytes], path: Path) -> None:
    assert proc.stdin is not None
    try:
        with gzip.open(path, "rb") as source:
            while chunk := source.read(CHUNK):
                proc.stdin.write(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        _stop(proc)
        raise BackupError(f"{path.name} is not a readable gzip file: {exc}") from None
