"""Faults provoked for real: crashes, compile errors, signals, concurrent writers, bad stores,
old schemas, bad numbers. Nothing may lose a completed measurement or leave a process behind."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psutil
import pytest

from autotune.config import standalone_config
from autotune.errors import StoreError
from autotune.records import TrialSpec
from autotune.store import open_store
from autotune.store.repository import Store
from autotune.trial import run_trial
from autotune.workloads import resolve_workload
from tests.conftest import REPO, run_cli
from tests.helpers import make_host, make_result

HERE = Path(__file__).parent / "workloads"


def _count(db: Path, sql: str) -> int:
    with closing(sqlite3.connect(db)) as connection:  # `with connection` alone never closes
        return int(connection.execute(sql).fetchone()[0])


@pytest.mark.slow
def test_a_trial_that_fails_to_compile_is_recorded_as_failed(tmp_path: Path) -> None:
    spec = TrialSpec(resolve_workload(str(HERE / "compile_error.py")), standalone_config(0),
                     0.01, tmp_path / "build")
    result = run_trial(spec, timeout=300)
    assert result.status == "failed"
    assert "compilation failed" in (result.error or "").lower()


def _calibrate_args(db: Path, targets: list[str]) -> list[str]:
    return ["calibrate", "--workload", str(HERE / "slow_numpy.py"), "--targets", *targets,
            "--max-threads", "0", "--durations", "0.01", "0.02", "--trials", "2",
            "--max-repeats", "0", "--confirm-top", "0", "--probe-loop", "0",
            "--db", f"sqlite:///{db}"]


_COMPILERS = {"make", "cc1plus", "g++", "c++", "gcc", "cc", "as", "ld", "collect2"}


def _wait_for_compiler(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Wait until the calibration's trial is compiling C++ (a compiler is running under it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            names = {p.name() for p in psutil.Process(proc.pid).children(recursive=True)}
        except psutil.Error:
            names = set()
        if names & _COMPILERS:
            return
        time.sleep(0.05)
    raise AssertionError("no compiler started")


def _wait_for_trials(db: Path, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                if _count(db, "SELECT count(*) FROM autotune_trials") >= at_least:
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} trials after {timeout} s")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, targets", [
    (signal.SIGINT, 130, ["numpy", "cpp"]),  # interrupts a C++ build: no compiler left behind
    (signal.SIGTERM, 143, ["numpy"]),
])
def test_interrupting_a_calibration_keeps_trials_and_resume_continues(
        tmp_path: Path, sig: signal.Signals, code: int, targets: list[str]) -> None:
    db = tmp_path / "store.db"
    # a fresh build cache, so that the standalone trial really compiles
    env = {**os.environ, "BRIAN2_AUTOTUNE_CACHE": str(tmp_path / "cache")}
    # A shell without job control starts background commands with SIGINT ignored, and Python
    # then never turns it into KeyboardInterrupt: a test run in the background sent SIGINT to a
    # calibration that went on to finish (exit 0). Start it as a terminal's Ctrl-C would find it.
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), *_calibrate_args(db, targets)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_sigint)
    _wait_for_trials(db, 2)
    if "cpp" in targets:
        _wait_for_compiler(proc)
    else:
        _wait_for_trials(db, 3)
    descendants = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    # the command it gives is the user's own, with --resume: a bare `calibrate --resume`
    # would resume CUBA, the default workload
    hint = re.search(r"continue with `brian2-autotune (.*)`", stderr)
    assert hint is not None, stderr
    assert shlex.split(hint.group(1)) == [*_calibrate_args(db, targets), "--resume"]
    time.sleep(0.5)
    assert not [p for p in descendants if p.is_running() and p.status() != "zombie"]
    stored = _count(db, "SELECT count(*) FROM autotune_trials")
    assert stored >= 2
    assert _count(db, "SELECT count(*) FROM autotune_calibrations WHERE status='interrupted'") == 1
    completed = {r[0] for r in sqlite3.connect(db).execute(  # every duration measured
        "SELECT config_key FROM autotune_trials WHERE status='ok' GROUP BY config_key "
        "HAVING count(DISTINCT duration) = 2")}
    assert completed

    resumed = run_cli(*shlex.split(hint.group(1)), "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(db) as connection:
        per_config = dict(connection.execute(
            "SELECT config_key, count(*) FROM autotune_trials GROUP BY config_key"))
        statuses = [r[0] for r in connection.execute("SELECT status FROM autotune_calibrations")]
    assert statuses == ["finished"]  # the same calibration, continued
    for key in completed:
        assert per_config[key] == 2, per_config  # completed configs were not measured again
    assert _count(db, "SELECT count(*) FROM autotune_profiles") == 1


@pytest.mark.slow
def test_two_calibrations_write_one_store_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    common = ["--targets", "numpy", "--durations", "0.01", "0.02", "--max-repeats", "0",
              "--confirm-top", "0", "--probe-loop", "0", "--trials", "2",
              "--db", f"sqlite:///{db}", "--json"]
    procs = [subprocess.Popen([sys.executable, str(REPO / "cli.py"), "calibrate", "--workload",
                               workload, *common], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for workload in (str(HERE / "tiny_ok.py"), "cuba")]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
    assert _count(db, "SELECT count(*) FROM autotune_calibrations WHERE status='finished'") == 2
    assert _count(db, "SELECT count(*) FROM autotune_trials WHERE status='ok'") == 8
    assert _count(db, "SELECT count(*) FROM autotune_profiles") == 2


def test_a_store_locked_beyond_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    open_store(url).close()
    holder = sqlite3.connect(tmp_path / "locked.db", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = Store(url, busy_timeout=0.5)
        with pytest.raises(StoreError, match="locked"):
            store.ensure_host(make_host())
        store.close()
    finally:
        holder.rollback()
        holder.close()


def test_an_unwritable_location_is_bad_input(tmp_path: Path) -> None:
    result = run_cli("show", "--db", "sqlite:////proc/autotune-test.db")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if os.geteuid() != 0:  # root ignores permission bits
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        result = run_cli("show", "--db", f"sqlite:///{folder / 'x.db'}")
        assert result.returncode == 2 and "read-only" in result.stderr


def test_a_store_of_the_first_schema_is_upgraded_with_its_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, _revision="0001")
    with old.engine.begin() as connection:
        from sqlalchemy import text

        connection.execute(text(
            "INSERT INTO autotune_hosts (id, fingerprint, components, info, created_at) VALUES "
            "(1, 'abc', '{}', '{}', '2026-01-01')"))
        connection.execute(text(
            "INSERT INTO autotune_workloads (id, signature, name, kind, created_at) VALUES "
            "(1, 'w1', 'cuba', 'builtin', '2026-01-01')"))
        connection.execute(text(
            "INSERT INTO autotune_calibrations (id, host_id, workload_id, status, settings, load,"
            " started_at) VALUES (1, 1, 1, 'finished', '{}', '{}', '2026-01-01')"))
        result = make_result(standalone_config(0), 0.1, 3.0, 0.5)
        as_json = {"config": json.dumps(result.config.to_dict()),
                   "phases": json.dumps(result.phases)}
        connection.execute(text(
            "INSERT INTO autotune_trials (calibration_id, config_key, config, duration, status,"
            " phases, cold, observables, created_at) VALUES (1, :key, :config, 0.1, 'ok', "
            ":phases, 0, '{\"rate\": 5.0}', '2026-01-01')"),
            {"key": result.config.key, **as_json})
    old.close()
    with open_store(url) as store:
        trials = store.trials(1)
        assert len(trials) == 1 and trials[0].config == standalone_config(0)
        assert trials[0].phases["run"] == 0.5
        assert store.trials(1, purpose="search") == trials
        assert store.runs() == []
    version = sqlite3.connect(tmp_path / "old.db").execute(
        "SELECT version_num FROM autotune_alembic_version").fetchone()[0]
    assert version == "0008"
    columns = [row[1] for row in sqlite3.connect(tmp_path / "old.db").execute(
        "PRAGMA table_info(autotune_runs)")]
    assert {"pgo_phase", "script_digest", "free_cpus", "cpus", "loop_cpu_share",
            "setup_cpu_share", "dry_neurons", "dry_synapses", "compile_seconds"} <= set(columns)


@pytest.mark.parametrize("args, text", [
    (["calibrate", "--workload", str(HERE / "raises.py"), "--targets", "numpy"],
     "parameters are wrong"),
    (["calibrate", "--workload", str(HERE / "not_mapping.py"), "--targets", "numpy"],
     "must return a mapping"),
    (["calibrate", "--durations", "0", "1"], "must be a positive number"),
    (["calibrate", "--durations", "-1", "1"], "must be a positive number"),
    (["calibrate", "--size", "0"], "must be at least 1"),
    (["calibrate", "--tolerance", "0"], "must be a positive number"),
    (["run", "--duration", "0", "x.py"], "must be positive"),
    (["run", "--duration", "10 parsecs", "x.py"], "is not a time"),
    (["run", "--num-threads", "1000000", "x.py"], "exceeds the"),
])
def test_bad_numbers_and_workloads_are_one_line_exit_2(args: list[str], text: str,
                                                       tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print('hi')\n")
    result = run_cli(args[0], "--db", f"sqlite:///{tmp_path / 's.db'}", *args[1:], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # On a busy host the calibration also warns that its timings may be off: that line is
    # information, not part of the error.
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and "host was busy" not in line]
    assert len(lines) == 1 and text in lines[0], result.stderr
