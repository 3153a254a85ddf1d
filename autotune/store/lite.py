"""The hot paths of the store, with the standard library's sqlite3 only.

``apply`` runs before every user run, and importing SQLAlchemy alone costs about a quarter of a
second; a SQLite profile lookup with :mod:`sqlite3` costs about a millisecond. Reading a profile
and recording a finished run happen here; other database URLs get ``UNSUPPORTED``/False and the
caller falls back to the full repository.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from autotune.runrecord import RunRecord
from autotune.store.location import SQLITE_BUSY_TIMEOUT, sqlite_path

#: Sentinel: this URL cannot be read here (not SQLite); use the repository instead.
UNSUPPORTED = object()


@contextmanager
def _open(url: str, table: str) -> Iterator[sqlite3.Connection | None]:
    """A connection to an existing SQLite store that has ``table``; None when there is none."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        yield None
        return
    connection = sqlite3.connect(str(path), timeout=SQLITE_BUSY_TIMEOUT)
    try:
        exists = connection.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                                    (table,)).fetchone()
        yield connection if exists else None
    finally:
        connection.close()


def read_profile_document(url: str, fingerprint: str, signature: str | None = None) -> Any:
    """The newest stored profile document of a host (and workload), None, or UNSUPPORTED.

    Raises:
        sqlite3.Error: the file is not a usable store (the caller turns this into StoreError).
    """
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    with _open(url, "autotune_profiles") as connection:
        if connection is None:
            return None
        query = "SELECT document FROM autotune_profiles WHERE fingerprint = ?"
        params: list[str] = [fingerprint]
        if signature:
            query += " AND workload_signature = ?"
            params.append(signature)
        row = connection.execute(query + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return json.loads(row[0]) if row else None


def read_profile_documents(url: str, fingerprint: str) -> Any:
    """Every stored profile document of a host, newest first, or UNSUPPORTED.

    Raises:
        sqlite3.Error: the file is not a usable store.
    """
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    with _open(url, "autotune_profiles") as connection:
        if connection is None:
            return []
        rows = connection.execute("SELECT document FROM autotune_profiles WHERE fingerprint = ? "
                                  "ORDER BY id DESC", (fingerprint,)).fetchall()
        return [json.loads(row[0]) for row in rows]


def read_stale_candidate(url: str, fingerprint: str, hostname: str) -> Any:
    """The newest profile document measured on this hostname under another fingerprint."""
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    with _open(url, "autotune_profiles") as connection:
        if connection is None:
            return None
        rows = connection.execute(
            "SELECT p.document, h.info FROM autotune_profiles p JOIN autotune_hosts h "
            "ON p.host_id = h.id WHERE p.fingerprint != ? ORDER BY p.id DESC", (fingerprint,))
        for document, info in rows:
            if json.loads(info or "{}").get("hostname") == hostname:
                return json.loads(document)
        return None


_RUN_COLUMNS = tuple(RunRecord.__dataclass_fields__)
#: How many of a script's newest runs are learned from.
SCRIPT_HISTORY = 50


def record_run(url: str, record: RunRecord) -> bool:
    """Append a run to ``autotune_runs``; False when this URL or store cannot take it here
    (not SQLite, no store yet, or a store of an older schema, which the repository upgrades).

    Raises:
        sqlite3.Error: the database refused the write.
    """
    if not url.startswith("sqlite"):
        return False
    with _open(url, "autotune_runs") as connection:
        if connection is None:
            return False
        values = record.to_dict()
        try:
            with connection:
                connection.execute(
                    f"INSERT INTO autotune_runs ({', '.join(_RUN_COLUMNS)}) VALUES "
                    f"({', '.join('?' for _ in _RUN_COLUMNS)})",
                    [values[c] for c in _RUN_COLUMNS])
        except sqlite3.OperationalError as e:
            if _older_schema(e):
                return False
            raise
        return True


def _older_schema(error: sqlite3.OperationalError) -> bool:
    """Whether ``error`` says the table lacks a column: a store written by an older version,
    which only the repository upgrades."""
    return "no column" in str(error)


@contextmanager
def _script_runs_table(url: str) -> Iterator[tuple[sqlite3.Connection, set[str]] | None]:
    """A connection to the store's runs table and the table's columns; None where there is no
    such table or it is older than learning per script (no ``script_digest``)."""
    with _open(url, "autotune_runs") as connection:
        if connection is None:
            yield None
            return
        present = {row[1] for row in connection.execute("PRAGMA table_info(autotune_runs)")}
        yield (connection, present) if "script_digest" in present else None


def read_script_runs(url: str, fingerprint: str, digest: str) -> Any:
    """This host's newest runs of one script (by the hash of its text), oldest first, as
    :class:`RunRecord`; UNSUPPORTED for a server store.

    Raises:
        sqlite3.Error: the file is not a usable store.
    """
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    with _script_runs_table(url) as table:
        if table is None:
            return []
        connection, present = table
        # A store of an older schema lacks the newest columns until the repository upgrades
        # it (the run's record does): their values are unknown, not a reason to learn nothing.
        columns = [c for c in _RUN_COLUMNS if c in present]
        rows = connection.execute(
            f"SELECT {', '.join(columns)} FROM autotune_runs WHERE fingerprint = ? "
            "AND script_digest = ? ORDER BY id DESC LIMIT ?",
            (fingerprint, digest, SCRIPT_HISTORY)).fetchall()
    return [RunRecord(**dict(zip(columns, row, strict=True))) for row in reversed(rows)]


def read_script_run_counts(url: str, fingerprint: str, digest: str) -> Any:
    """How many runs each of this host's other scripts (by the hash of their text, this one
    left out) has recorded; UNSUPPORTED for a server store.

    Raises:
        sqlite3.Error: the file is not a usable store.
    """
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    with _script_runs_table(url) as table:
        if table is None:
            return []
        rows = table[0].execute(
            "SELECT count(*) FROM autotune_runs WHERE fingerprint = ? AND script_digest IS NOT "
            "NULL AND script_digest != ? GROUP BY script_digest", (fingerprint, digest)).fetchall()
    return [int(row[0]) for row in rows]


def read_float32_checked(url: str, digest: str) -> Any:
    """Whether the newest float32 check of this script's text passed (False when there is
    none); UNSUPPORTED for a server store.

    Raises:
        sqlite3.Error: the file is not a usable store.
    """
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    with _open(url, "autotune_precision_checks") as connection:
        if connection is None:
            return False
        row = connection.execute(
            "SELECT passed FROM autotune_precision_checks WHERE script_digest = ? "
            "ORDER BY id DESC LIMIT 1", (digest,)).fetchone()
        return bool(row and row[0])
