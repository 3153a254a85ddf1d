"""The store: round trips through real SQLite files, Optuna sharing the database, bad locations."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotune.config import RunConfig, all_configs
from autotune.errors import StoreUnavailable
from autotune.profile import Profile
from autotune.store import open_store
from autotune.workloads import resolve_workload
from tests.helpers import make_host, make_profile, make_result


def test_trials_round_trip_and_survive_reopening(store_url: str) -> None:
    host, workload = make_host(), resolve_workload("cuba", 100)
    config = RunConfig("runtime", "cython", 0, "float32", "O2")
    with open_store(store_url) as store:
        info = store.start_calibration(host, workload, {"target_duration": 10}, {"busy": False})
        store.record_trial(info.id, make_result(config, 0.1, 4.0, 0.5, cold=True))
        store.record_trial(info.id, make_result(config, 0.4, 5.0, 2.0))
    with open_store(store_url) as store:
        trials = store.trials(info.id)
        assert [t.duration for t in trials] == [0.1, 0.4]
        assert trials[0].config == config and trials[0].cold
        assert trials[1].phases["run"] == 2.0
        assert trials[1].model["neurons"] == 10.0
        assert store.hosts()[0]["fingerprint"] == host.fingerprint


# No deadline: each example opens a real SQLite store, which took 552 ms on a busy host
# (README command 2 beside CI) against hypothesis's default 200 ms.
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(config=st.sampled_from(all_configs(max_threads=4)))
def test_every_config_round_trips_through_the_store(tmp_path: Path, config: RunConfig) -> None:
    url = f"sqlite:///{tmp_path / 'hyp.db'}"
    with open_store(url) as store:
        info = store.start_calibration(make_host(), resolve_workload("stdp", 10), {}, {})
        store.record_trial(info.id, make_result(config, 0.1, 2.0, 0.3))
        assert store.trials(info.id)[-1].config == config


def test_profile_round_trip_and_newest_wins(store_url: str) -> None:
    host = make_host()
    profile = make_profile(host)
    with open_store(store_url) as store:
        store.save_profile(profile)
        newer = Profile.from_dict({**profile.to_dict(), "target_duration": 100.0})
        store.save_profile(newer)
    with open_store(store_url) as store:
        loaded = store.latest_profile(host.fingerprint, profile.workload["signature"])
        assert loaded is not None and loaded.target_duration == 100.0
        assert loaded.entries == profile.entries
        assert len(store.profiles(host.fingerprint)) == 1
        assert store.latest_profile("0" * 16) is None


def test_resumable_calibration_is_the_newest_unfinished(store_url: str) -> None:
    host, workload = make_host(), resolve_workload("cuba", 100)
    with open_store(store_url) as store:
        first = store.start_calibration(host, workload, {}, {})
        store.finish_calibration(first.id, "finished")
        assert store.resumable_calibration(host.fingerprint, workload.signature) is None
        second = store.start_calibration(host, workload, {}, {})
        store.finish_calibration(second.id, "interrupted")
        found = store.resumable_calibration(host.fingerprint, workload.signature)
        assert found is not None and found.id == second.id


def test_optuna_and_our_tables_share_one_database(store_url: str) -> None:
    study = optuna.create_study(storage=store_url, study_name="someone-elses-study")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with open_store(store_url) as store:
        store.save_profile(make_profile(make_host()))
    # Both sides still open and read the shared database.
    again = optuna.load_study(study_name="someone-elses-study", storage=store_url)
    assert len(again.trials) == 2
    with open_store(store_url) as store:
        assert store.profiles()
    with open_store(store_url) as store:
        from sqlalchemy import inspect

        tables = set(inspect(store.engine).get_table_names())
    assert {"studies", "trials", "alembic_version", "autotune_alembic_version",
            "autotune_profiles"} <= tables


def test_a_non_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable, match="not a SQLite database"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_a_corrupt_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable, match="cannot open store"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'nowhere' / 'store.db'}")
    assert not (tmp_path / "nowhere").exists()


def test_a_bare_path_is_taken_as_sqlite(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "plain.db")) as store:
        assert store.url.startswith("sqlite:///")
    assert (tmp_path / "plain.db").exists()


@pytest.mark.postgresql
def test_nodes_creating_a_new_postgresql_store_together_all_succeed(postgres_url: str) -> None:
    """Four processes open one empty PostgreSQL database at the same moment and create our
    tables and Optuna's (two nodes of a job array starting together died with UniqueViolation
    on CREATE TYPE studydirection): the schema lock is the server's advisory lock."""
    code = ("import sys\nfrom autotune.store import open_store\n"
            "from autotune.search.study import open_study\n"
            "with open_store(sys.argv[1]) as store:\n"
            "    with store.schema_lock():\n"
            "        pass\n"
            "    open_study(store.url, 'race-' + sys.argv[2], 0, 1, store.schema_lock)\n"
            "print('ok')\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_url, str(k)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", err


@pytest.mark.parametrize("change, message", [
    (lambda url: url.replace("postgres@", "nobody@"), "nobody"),
    (lambda url: url.rsplit(":", 1)[0] + ":1/x", "cannot open store"),
])
@pytest.mark.postgresql
def test_a_server_store_that_cannot_be_reached_is_one_line_exit_2(
        postgres_url: str, change: object, message: str) -> None:
    from tests.conftest import run_cli

    url = change(postgres_url)  # type: ignore[operator]
    result = run_cli("show", "--db", url)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_a_server_url_without_its_driver_says_what_to_install() -> None:
    from tests.conftest import run_cli

    result = run_cli("show", "--db", "postgresql+pg8000://lab:s3cret@127.0.0.1:1/autotune")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install" in lines[0] and "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr


def test_a_password_never_appears_in_messages() -> None:
    from autotune.store.location import display_url

    shown = display_url("postgresql+psycopg://lab:s3cret@db.example:5432/autotune")
    assert "s3cret" not in shown and shown.startswith("postgresql+psycopg://lab:***@db.")


@pytest.mark.postgresql
def test_nodes_finishing_together_write_one_profile(postgres_url: str) -> None:
    """Six processes ask, at the same moment, to finalize one calibration: exactly one may
    (the compare-and-set on its status), so one profile is written."""
    from autotune.workloads import resolve_workload

    host = make_host()
    with open_store(postgres_url) as store:
        info = store.start_calibration(host, resolve_workload("cuba", 40), {}, {})
    code = ("import sys, time\nfrom autotune.store import open_store\n"
            "store = open_store(sys.argv[1])\n"
            "time.sleep(max(0.0, float(sys.argv[3]) - time.time()))\n"
            "print(store.claim_finalization(int(sys.argv[2])))\n")
    start = f"{time.time() + 3:.3f}"  # all connected before any of them asks
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_url, str(info.id), start],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    outputs = [p.communicate(timeout=120) for p in procs]
    answers = [out.strip() for out, _ in outputs]
    assert sorted(answers) == ["False"] * 5 + ["True"], outputs


def test_checking_a_store_keeps_the_locks_of_this_process_s_open_connections(
        tmp_path: Path) -> None:
    """Checking a store's file before opening it must not drop the SQLite locks this process
    holds on it (a calibration's Optuna storage stays open): closing a plain descriptor of the
    file would, and another process closing the store would then delete the write-ahead log
    in use ("disk I/O error" in a suite calibration's second member)."""
    import sqlite3
    import subprocess
    import sys

    from autotune.store.location import check_sqlite_location

    path = tmp_path / "store.db"
    open_connection = sqlite3.connect(path)
    open_connection.execute("PRAGMA journal_mode=WAL")
    open_connection.execute("CREATE TABLE t (x INTEGER)")
    open_connection.execute("INSERT INTO t VALUES (1)")
    open_connection.commit()
    check_sqlite_location(f"sqlite:///{path}")
    other = (f"import sqlite3; c = sqlite3.connect({str(path)!r}); "
             "c.execute('SELECT count(*) FROM t').fetchone(); c.close()")
    subprocess.run([sys.executable, "-c", other], check=True, timeout=60)
    assert (tmp_path / "store.db-wal").exists()  # still ours: the other was not the last user
    open_connection.execute("INSERT INTO t VALUES (2)")
    open_connection.commit()
    assert open_connection.execute("SELECT count(*) FROM t").fetchone() == (2,)
    open_connection.close()
