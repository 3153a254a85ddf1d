"""Where the store lives: default path, URL resolution and SQLite path checks (no SQLAlchemy)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from autotune.errors import StoreUnavailable

ENV_VAR = "BRIAN2_AUTOTUNE_DB"
#: Seconds every connection to a SQLite store (ours, Optuna's, apply's) waits for a lock.
SQLITE_BUSY_TIMEOUT = 60.0


def default_path() -> Path:
    """The default SQLite file: ``<user data dir>/brian2-autotune/autotune.db``."""
    from autotune.paths import user_folder

    return user_folder("data") / "autotune.db"


def default_url() -> str:
    """The default store URL (creating its folder, since it is ours)."""
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def resolve_url(url: str | None = None) -> str:
    """The store URL to use: the argument, else ``$BRIAN2_AUTOTUNE_DB``, else the default.

    A bare path (no ``://``) is taken as a SQLite file.
    """
    chosen = url or os.environ.get(ENV_VAR) or default_url()
    if "://" not in chosen:
        chosen = f"sqlite:///{Path(chosen).expanduser().absolute()}"
    for plain in ("postgresql://", "postgres://"):
        if chosen.startswith(plain):  # the driver we ship (psycopg 3), not SQLAlchemy's psycopg2
            chosen = "postgresql+psycopg://" + chosen[len(plain):]
    return chosen


def display_url(url: str) -> str:
    """``url`` fit for a message or a log: the password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def is_postgresql(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL store."""
    return url.startswith(("postgresql", "postgres"))


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and non-SQLite URLs."""
    if not url.startswith("sqlite"):
        return None
    _, _, rest = url.partition(":///")
    rest = rest.split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest)


def _check_is_sqlite(path: Path) -> None:
    """Refuse a file that is not a SQLite database, reading it through SQLite, read-only.

    Not with a plain ``open``: closing any descriptor of the file drops all of this process's
    POSIX locks on it, those of its open SQLite connections included (a calibration's Optuna
    storage, say), and another connection could then delete the write-ahead log in use: a
    suite calibration opening its second store died with "disk I/O error". SQLite's own
    descriptors are kept open while locks are held.
    """
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise StoreUnavailable(f"cannot read store {path}: {e}") from e
    try:
        connection.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise unusable_sqlite_store(path, e) from e
    finally:
        connection.close()


def unusable_sqlite_store(path: Path | str, error: sqlite3.Error) -> StoreUnavailable:
    """The error for a store file SQLite refused with ``error``: what was wrong and what to do."""
    if "not a database" in str(error):
        return StoreUnavailable(f"cannot open store {path}: it is not a SQLite database, or a "
                                "damaged one; give another --db (the file was left untouched)")
    return StoreUnavailable(f"cannot read store {path}: {error}")


def check_sqlite_location(url: str) -> None:
    """Refuse, without touching anything, a SQLite location that cannot work.

    Raises:
        StoreUnavailable: missing folder, unwritable folder, or an existing file that is not a
            SQLite database.
    """
    path = sqlite_path(url)
    if path is None:
        return
    if path.is_dir():
        raise StoreUnavailable(f"store {path} is a directory; give a file path, "
                               "e.g. --db sqlite:///path/to/autotune.db")
    if not path.parent.is_dir():
        raise StoreUnavailable(f"store folder {path.parent} does not exist; create it or "
                               "choose another --db")
    if path.exists():
        _check_is_sqlite(path)
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            raise StoreUnavailable(f"store {path} is read-only; make it writable or choose "
                                   "another --db")
    elif not os.access(path.parent, os.W_OK):
        raise StoreUnavailable(f"cannot create store in {path.parent}: folder is read-only; "
                               "choose another --db")
