"""The store's engine: SQLite pragmas and busy timeout, schema migrations under a lock, and
SQLAlchemy's errors turned into one clear :class:`~autotune.errors.StoreError` line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from autotune.errors import StoreError, StoreUnavailable
from autotune.store.location import display_url, is_postgresql, sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_pragmas(busy_timeout: float) -> Any:
    """A connect hook: busy timeout, WAL and foreign keys on every new SQLite connection."""

    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers and one writer at once
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return set_pragmas


#: Connections one process keeps open to a server store (a calibration uses two at most: ours
#: and Optuna's): many nodes against one server must stay below its ``max_connections``.
SERVER_POOL_SIZE = 2
#: Key of the PostgreSQL advisory lock that serialises schema creation between nodes.
SCHEMA_LOCK_KEY = 0x62326174  # "b2at"


def make_engine(url: str, busy_timeout: float) -> Engine:
    """An engine for ``url``: SQLite with :func:`sqlite_pragmas`; a server with a small pool,
    pre-ping (a restarted server's dead connections are replaced) and a connect timeout.

    Raises:
        StoreUnavailable: the URL's database driver is not installed.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect", sqlite_pragmas(busy_timeout))
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=SERVER_POOL_SIZE,
                             max_overflow=1, connect_args=_connect_args(url))
    except ImportError as e:
        raise StoreUnavailable(
            f"the store {display_url(url)} needs a database driver that is not installed "
            f"({e}); for PostgreSQL: pip install 'brian2-autotune[postgresql]'") from e


def _connect_args(url: str) -> dict[str, Any]:
    return {"connect_timeout": 10} if is_postgresql(url) else {}


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise schema creation and upgrades in one store between processes.

    Two processes creating a new store at once would both try to create its tables (ours with
    Alembic, and Optuna's: two nodes on an empty PostgreSQL database died with
    ``UniqueViolation`` on ``CREATE TYPE studydirection``). On PostgreSQL the lock is the
    server's own: a session-level advisory lock, held on a connection of its own. On SQLite it
    is an ``flock`` on the store's *folder*: never open and close another descriptor of the
    database file itself, since closing any descriptor of a file drops all of the process's
    POSIX locks on it, SQLite's included, and another process could then delete the
    write-ahead log under our feet.
    """
    url = str(engine.url)
    if is_postgresql(url):
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": SCHEMA_LOCK_KEY})
                connection.commit()
        return
    path = sqlite_path(url)
    if path is None:
        yield
        return
    import fcntl

    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the flock


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the store's tables to ``revision`` with Alembic (a no-op when already there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with migration_lock(engine), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def describe_error(error: SQLAlchemyError) -> str:
    """The driver's own message, first line (SQLAlchemy's wrapping says nothing more)."""
    original = getattr(error, "orig", None)
    return str(original or error).splitlines()[0]


def locked_error(url: str, error: SQLAlchemyError, timeout: float) -> StoreError | None:
    """A clear error when SQLite gave up waiting for another process's lock."""
    if "locked" not in describe_error(error):
        return None
    return StoreError(f"store {display_url(url)} stayed locked by another process for "
                      f"{timeout:g} s; "
                      "try again later")


