"""Shared fixtures: isolated store and cache locations, Brian2-state guard, a calibrated store.

Every test gets its own SQLite file and the session shares one build cache, so compiled
artefacts (Cython modules, standalone projects) are built once per test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_CUBA = 60  # neurons: enough activity to validate, fast to build


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the shared calibration is slow wherever it is written: the first one
    to run pays for the calibration (~1.5 minutes on 2 cores)."""
    for item in items:
        if "calibrated" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build cache for the whole session (compiled artefacts are reused)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> None:
    """Never touch the user's data or cache directories."""
    monkeypatch.setenv("BRIAN2_AUTOTUNE_DB", f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.setenv("BRIAN2_AUTOTUNE_CACHE", str(cache_root))


@pytest.fixture(autouse=True)
def brian2_state_unchanged() -> Iterator[None]:
    """Tests must not leave Brian2's global prefs or device changed (as in Brian2's conftest)."""
    brian2 = sys.modules.get("brian2")
    before = (dict(brian2.prefs), brian2.get_device()) if brian2 else None
    yield
    brian2 = sys.modules.get("brian2")
    if brian2 is not None and before is not None:
        assert dict(brian2.prefs) == before[0], "a test changed Brian2's prefs"
        assert brian2.get_device() is before[1], "a test changed Brian2's device"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite store URL for one test."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python cli.py ARGS`` in a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd or REPO, timeout=timeout)


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory: pytest.TempPathFactory, cache_root: Path) -> dict[str, object]:
    """One real, small calibration of tiny CUBA, shared by the tests that need a profile."""
    from autotune.calibrate import CalibrationSettings, calibrate
    from autotune.search import Budget

    folder = tmp_path_factory.mktemp("calibrated")
    url = f"sqlite:///{folder / 'store.db'}"
    saved = os.environ.get("BRIAN2_AUTOTUNE_CACHE")
    os.environ["BRIAN2_AUTOTUNE_CACHE"] = str(cache_root)
    try:
        outcome = calibrate(
            "cuba", size=TINY_CUBA, db=url, cache_root=cache_root,
            settings=CalibrationSettings(target_duration=10.0, durations=(0.02, 0.06),
                                         budget=Budget(trials=3), max_threads=1,
                                         confirm_top=2, confirm_rounds=1,
                                         confirm_max_rounds=2, max_repeats=1,
                                         probe_loop=0.05,
                                         tolerance=0.05))
    finally:
        if saved is None:
            os.environ.pop("BRIAN2_AUTOTUNE_CACHE", None)
        else:
            os.environ["BRIAN2_AUTOTUNE_CACHE"] = saved
    return {"url": url, "outcome": outcome}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the session: ``$BRIAN2_AUTOTUNE_TEST_POSTGRES`` (started by
    ``.ci/run``), or one started here with initdb/pg_ctl on a loopback port in a temporary
    folder (as the ``postgres`` user when running as root, since the server refuses root) and
    stopped at the end. Yields its admin URL without a database name."""
    from tests.pgserver import start_postgres

    given = os.environ.get("BRIAN2_AUTOTUNE_TEST_POSTGRES")
    if given:
        yield given
        return
    with start_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's server for one test."""
    from tests.pgserver import create_database

    return create_database(postgres_server, request.node.name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))
