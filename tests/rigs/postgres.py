"""Real PostgreSQL from Debian's package: initdb in a temp dir, a loopback port, stopped by PID.

Fixtures:
- `postgres` (session): one server -> Postgres (`.url(db)`, `.create_database(name) -> url`, `.stop()`).
- `postgres_url`: a fresh, empty database on that server for one test (SQLAlchemy URL, psycopg 3).

The server runs as the `postgres` system user when the tests run as root (initdb refuses root), with trust
authentication on 127.0.0.1 only and its socket in its own directory. Skips only when the package is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rigs.mosquitto import free_port

USER = "kiosk"


def pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and postgres in it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class Postgres:
    host = "127.0.0.1"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))  # not under pytest's 0700 root-owned tmp
        self.data, self.log_path = self.dir / "data", self.dir / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._user: dict = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self) -> Postgres:
        if not self.data.exists():
            subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], check=True,
                           capture_output=True, cwd=self.dir, **self._user)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", self.host,
             "-k", str(self.dir), "-c", "fsync=on", "-c", "max_connections=50"],
            stdout=log, stderr=log, cwd=self.dir, **self._user)
        os.close(log)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self.proc.returncode}:\n{self.log()}")
            ready = subprocess.run([str(self.bindir / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{self.log()}")
            time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host={self.host} port={self.port} user={USER} dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    server = Postgres(bindir).start()
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres) -> str:
    return postgres.create_database()
