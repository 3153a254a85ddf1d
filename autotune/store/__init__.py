"""The store: hosts, workloads, calibrations, every trial, and profiles, through SQLAlchemy.

SQLite in the user's data directory by default; ``--db URL`` or ``BRIAN2_AUTOTUNE_DB`` takes any
SQLAlchemy URL. Only this package imports SQLAlchemy and Alembic, and only when the repository is
used: :mod:`autotune.store.lite` reads a profile with the standard library so that ``apply``
stays fast, which is why the names below are imported lazily.
"""

from __future__ import annotations

from typing import Any

from autotune.store.location import default_url, resolve_url

__all__ = ["CalibrationInfo", "Store", "default_url", "open_store", "resolve_url"]


def __getattr__(name: str) -> Any:
    if name in ("CalibrationInfo", "Store", "open_store"):
        from autotune.store import repository

        return getattr(repository, name)
    raise AttributeError(name)
