"""Start a throw-away PostgreSQL server for the tests (initdb + pg_ctl, loopback only)."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return command
    # runuser lives in /usr/sbin, which a root shell's PATH may lack
    runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if runuser:
        return [runuser, "-u", "postgres", "--", *command]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


class PostgresServer:
    """A PostgreSQL server in its own temporary folder, on a loopback port, that a test can stop
    and start again (same data, same port)."""

    def __init__(self) -> None:
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if not initdb or not pg_ctl:
            pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
        pytest.importorskip("psycopg")
        self.pg_ctl = pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="autotune-pg-"))  # reachable by postgres
        if os.geteuid() == 0:
            server_user = pwd.getpwnam("postgres")
            os.chown(self.folder, server_user.pw_uid, server_user.pw_gid)
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"
        subprocess.run(_as_server_user([initdb, "-D", str(self.data), "-A", "trust", "-U",
                                        "postgres", "--no-sync"]), check=True,
                       capture_output=True)

    def start(self) -> None:
        """Start (or start again) and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off")
        subprocess.run(_as_server_user([self.pg_ctl, "-D", str(self.data), "-o", options, "-l",
                                        str(self.folder / "server.log"), "-w", "start"]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        """Stop at once, dropping every connection."""
        subprocess.run(_as_server_user([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w",
                                        "stop"]), capture_output=True)

    def remove(self) -> None:
        """Stop and delete everything."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def start_postgres() -> Iterator[str]:
    """Yield ``postgresql+psycopg://postgres@127.0.0.1:PORT`` of a new running server; stop it
    and remove its folder afterwards. Skips the test when PostgreSQL or psycopg is missing."""
    server = PostgresServer()
    try:
        server.start()
        yield server.url
    finally:
        server.remove()


def create_database(server: str, name: str) -> str:
    """Create a new, empty database named after ``name``; return its URL."""
    import psycopg

    database = re.sub(r"[^a-z0-9_]", "_", name.lower())[:50] + f"_{os.getpid()}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
        connection.execute(f'CREATE DATABASE "{database}"')
    return f"{server}/{database}"
