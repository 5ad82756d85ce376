"""A PostgreSQL set up like a managed one (RDS, Supabase, Neon), from Debian's server package.

TLS only (a self-signed CA made here, clients use sslmode=verify-full), SCRAM passwords, and
an application role that owns its database but is neither superuser nor allowed to create
databases; CONNECT on `template1` (and `postgres`, unless that is the app's database, as on
Supabase) is revoked from PUBLIC, like hardened servers do. The bootstrap superuser reaches
the server only over its Unix socket. Run as a non-root user (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import ipaddress
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

APP_ROLE = "cronicorn_app"
APP_PASSWORD = "Sup3r-Secret/pa55 word"  # a space and a slash: quoted in URLs, never shown
ADMIN = "rds_admin"


def server_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL server installed (apt install postgresql), if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _run_as() -> tuple[int, int] | None:
    """initdb and postgres refuse to run as root: use `nobody` then."""
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam("nobody")
    return user.pw_uid, user.pw_gid


def _write_tls(directory: Path) -> Path:
    """A CA and a server certificate for localhost / 127.0.0.1 (what verify-full checks)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cronicorn test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "server.crt").write_bytes(cert.public_bytes(pem))
    (directory / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "server.key").chmod(0o600)
    (directory / "root.crt").write_bytes(ca.public_bytes(pem))
    return directory / "root.crt"


@dataclass
class ManagedServer:
    root: Path
    port: int
    database: str
    ca: Path

    @property
    def admin_conninfo(self) -> str:
        return f"host={self.root / 'sock'} port={self.port} user={ADMIN} dbname=postgres"

    def url(self, database: str | None = None) -> str:
        """The application's DATABASE_URL, as a provider's console would give it."""
        return (
            f"postgresql://{APP_ROLE}:{quote(APP_PASSWORD, safe='')}@localhost:{self.port}/"
            f"{database or self.database}?sslmode=verify-full&sslrootcert={self.ca}"
        )

    def admin(self, *statements: str, database: str = "postgres") -> None:
        info = self.admin_conninfo.replace("dbname=postgres", f"dbname={database}")
        with psycopg.connect(info, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]


def _start(bindir: Path, root: Path, owner: tuple[int, int] | None, port: int) -> None:
    data = root / "data"
    kwargs: dict[str, object] = {}
    if owner is not None:
        kwargs = {"user": owner[0], "group": owner[1], "extra_groups": []}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", ADMIN, "--auth-local=trust",
         "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True, cwd=root, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    tls = root / "tls"
    for name in ("server.crt", "server.key"):
        shutil.copy(tls / name, data / name)
        if owner is not None:
            os.chown(data / name, *owner)
    (data / "server.key").chmod(0o600)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{root / 'sock'}'\nssl = on\n"
            "ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            "password_encryption = 'scram-sha-256'\nfsync = off\n"
        )
    (data / "pg_hba.conf").write_text(
        f"local all {ADMIN} trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
    )
    subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
         "-t", "60", "start"],
        check=True, capture_output=True, cwd=root, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


@contextlib.contextmanager
def managed_server(database: str, port: int) -> Iterator[ManagedServer]:
    bindir = server_bin_dir()
    assert bindir is not None
    owner = _run_as()
    root = Path(tempfile.mkdtemp(prefix="cronicorn-managed-"))
    (root / "sock").mkdir()
    (root / "tls").mkdir()
    ca = _write_tls(root / "tls")
    if owner is not None:
        for path in (root, root / "sock", root / "tls", *(root / "tls").iterdir()):
            os.chown(path, *owner)
        ca.chmod(0o644)
    try:
        _start(bindir, root, owner, port)
        server = ManagedServer(root=root, port=port, database=database, ca=ca)
        _configure(server)
        yield server
    finally:
        kwargs: dict[str, object] = {}
        if owner is not None:
            kwargs = {"user": owner[0], "group": owner[1], "extra_groups": []}
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
            capture_output=True, check=False, cwd=root, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _configure(server: ManagedServer) -> None:
    password = APP_PASSWORD.replace("'", "''")
    server.admin(
        f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{password}' "
        "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION",
        "REVOKE CONNECT ON DATABASE template1 FROM PUBLIC",
    )
    if server.database == "postgres":  # Supabase: the app's database is `postgres` itself
        server.admin(f"ALTER DATABASE postgres OWNER TO {APP_ROLE}")
        # …which also holds the provider's own schema (readable by the app) and extensions
        server.admin(
            "CREATE SCHEMA auth",
            "CREATE TABLE auth.users (id uuid PRIMARY KEY, email text)",
            "INSERT INTO auth.users VALUES (gen_random_uuid(), 'someone@example.com')",
            f"GRANT USAGE ON SCHEMA auth TO {APP_ROLE}",
            f"GRANT SELECT ON auth.users TO {APP_ROLE}",
            "CREATE SCHEMA extensions",
            "CREATE EXTENSION pgcrypto WITH SCHEMA extensions",
        )
    else:
        server.admin(
            f"CREATE DATABASE {server.database} OWNER {APP_ROLE}",
            "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
        )
