"""Start a throw-away PostgreSQL server for the tests (initdb + pg_ctl, loopback only)."""

from __future__ import annotations

import os
import pwd
import re
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
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *command]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]


@contextmanager
def start_postgres() -> Iterator[str]:
    """Yield ``postgresql+psycopg://postgres@127.0.0.1:PORT`` of a server running in a new
    temporary folder; stop it and remove the folder afterwards. Skips the test when
    PostgreSQL or psycopg is missing."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    pytest.importorskip("psycopg")
    folder = Path(tempfile.mkdtemp(prefix="autotune-pg-"))  # in /tmp: reachable by postgres
    try:
        if os.geteuid() == 0:
            server_user = pwd.getpwnam("postgres")
            os.chown(folder, server_user.pw_uid, server_user.pw_gid)
        with _running(folder, initdb, pg_ctl) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _running(folder: Path, initdb: str, pg_ctl: str) -> Iterator[str]:
    data = folder / "data"
    port = _free_port()
    subprocess.run(_as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                                    "--no-sync"]), check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-o", options, "-l",
                                    str(folder / "server.log"), "-w", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)


def create_database(server: str, name: str) -> str:
    """Create a new, empty database named after ``name``; return its URL."""
    import psycopg

    database = re.sub(r"[^a-z0-9_]", "_", name.lower())[:50] + f"_{os.getpid()}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
        connection.execute(f'CREATE DATABASE "{database}"')
    return f"{server}/{database}"
