"""Read profiles from a SQLite store with the standard library only.

``apply`` runs before every user run, and importing SQLAlchemy alone costs about a quarter of a
second; a SQLite profile lookup with :mod:`sqlite3` costs about a millisecond. Other database URLs
return ``None`` here and the caller falls back to the full repository.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from autotune.store.location import sqlite_path

#: Sentinel: this URL cannot be read here (not SQLite); use the repository instead.
UNSUPPORTED = object()


def _connect(url: str) -> sqlite3.Connection | None:
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    return sqlite3.connect(str(path), timeout=10)


def read_profile_document(url: str, fingerprint: str, signature: str | None = None) -> Any:
    """The newest stored profile document of a host (and workload), None, or UNSUPPORTED.

    Raises:
        sqlite3.Error: the file is not a usable store (the caller turns this into StoreError).
    """
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    connection = _connect(url)
    if connection is None:
        return None
    try:
        if not _has_profiles_table(connection):
            return None
        query = "SELECT document FROM autotune_profiles WHERE fingerprint = ?"
        params: list[str] = [fingerprint]
        if signature:
            query += " AND workload_signature = ?"
            params.append(signature)
        row = connection.execute(query + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return json.loads(row[0]) if row else None
    finally:
        connection.close()


def read_stale_candidate(url: str, fingerprint: str, hostname: str) -> Any:
    """The newest profile document measured on this hostname under another fingerprint."""
    if not url.startswith("sqlite"):
        return UNSUPPORTED
    connection = _connect(url)
    if connection is None:
        return None
    try:
        if not _has_profiles_table(connection):
            return None
        row = connection.execute(
            "SELECT p.document FROM autotune_profiles p JOIN autotune_hosts h "
            "ON p.host_id = h.id WHERE p.fingerprint != ? ORDER BY p.id DESC", (fingerprint,)
        ).fetchall()
        hosts = dict(connection.execute("SELECT fingerprint, info FROM autotune_hosts"))
        for (document,) in row:
            data = json.loads(document)
            info = json.loads(hosts.get(data.get("fingerprint"), "{}") or "{}")
            if info.get("hostname") == hostname:
                return data
        return None
    finally:
        connection.close()


def _has_profiles_table(connection: sqlite3.Connection) -> bool:
    return connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='autotune_profiles'"
    ).fetchone() is not None
