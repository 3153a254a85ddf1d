"""A server store seen from a node: apply reads the node's copy, never waits for the network,
and queues finished runs; the server stopped and started again loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.buildslots import node_dir
from autotune.errors import StoreError
from autotune.host import collect_host
from autotune.store import nodecopy, open_store
from tests.helpers import make_profile
from tests.pgserver import PostgresServer, create_database

pytestmark = pytest.mark.postgresql

USER_SCRIPT = """
import json, sys, autotune
from brian2 import NeuronGroup, run, ms
applied = autotune.apply(duration=0.5, db=sys.argv[1])  # numpy in this profile: no compiling
G = NeuronGroup(5, 'dv/dt = -v/(10*ms) : 1', method='exact')
run(1*ms)
print(json.dumps(applied.to_dict()))
"""


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A server of this test's own, which it may stop and start again."""
    pg = PostgresServer()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


def _user_run(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    # numpy: the run itself must not compile anything in this test
    return subprocess.run([sys.executable, str(script), url], capture_output=True, text=True,
                          timeout=300)


def _applied(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_apply_uses_the_node_copy_when_the_server_is_down_and_queues_the_run(
        server: PostgresServer, tmp_path: Path, cache_root: Path) -> None:
    url = create_database(server.url, "node_copy")
    host = collect_host()
    with open_store(url) as store:
        store.save_profile(make_profile(host))
    first = _applied(_user_run(tmp_path, url))
    assert first["source"] == "profile"
    folder = nodecopy.copy_folder(node_dir(cache_root, host.fingerprint), url)
    assert nodecopy.read_copy(folder) is not None  # fetched by the first apply

    server.stop()
    down = _applied(_user_run(tmp_path, url))  # the run goes on without the server
    # and learns from the first run, which this node holds (in its copy or its queue)
    assert down["source"] == "script" and down["config_key"] == first["config_key"]
    with pytest.raises(StoreError, match="cannot open store"):
        nodecopy.refresh(url, host.fingerprint, folder)  # what the background refresher meets
    noted = nodecopy.read_copy(folder)
    assert noted is not None and noted["error"] and noted["profiles"]
    warned_run = _user_run(tmp_path, url)
    assert _applied(warned_run)["source"] == "script"
    warnings = [line for line in warned_run.stderr.splitlines() if "unreachable" in line]
    assert len(warnings) == 1 and "using this node's copy" in warnings[0]
    assert nodecopy.queued_runs(folder) >= 2  # the runs made while the server was down

    server.start()
    nodecopy.refresh(url, host.fingerprint, folder)
    assert nodecopy.queued_runs(folder) == 0
    with open_store(url) as store:
        recorded = store.runs(host.fingerprint)
    assert len(recorded) >= 3 and [r.source for r in recorded[:2]] == ["profile", "script"]
    assert len({r.script_digest for r in recorded}) == 1
    assert nodecopy.read_copy(folder)["error"] is None  # type: ignore[index]


def test_a_nodes_copy_carries_float32_checks_and_runs_queued_on_it_count_once(
        server: PostgresServer, tmp_path: Path, cache_root: Path) -> None:
    """What apply learns from with a server store comes from the node's copy and queue: the
    script's float32 check, and its runs, each once, whether still queued or already sent."""
    from dataclasses import replace

    from autotune.records import PrecisionCheck
    from autotune.runrecord import RunRecord

    url = create_database(server.url, "learning")
    host = collect_host()
    node = node_dir(cache_root, host.fingerprint)
    folder = nodecopy.copy_folder(node, url)
    check = PrecisionCheck("abc", "/x/model.py", "numpy-float32", 0.05, True, 0.001, None,
                           {"M.num_spikes": [10.0, 10.0]}, "2026-11-30T00:00:00+00:00")
    with open_store(url) as store:
        store.save_profile(make_profile(host))
        store.record_precision_check(check)
        store.record_precision_check(replace(check, script_digest="def", passed=False))
    run = RunRecord(host.fingerprint, None, None, "numpy-float64", "profile", "/x/model.py", 1.0,
                    None, None, 3.0, 2.0, 1.0, None, 0, "2026-11-30T00:00:01+00:00",
                    script_digest="abc", cold=False)
    nodecopy.queue_run(folder, run.to_dict())
    assert nodecopy.server_script_runs(url, "abc", node) == [run]  # queued, not yet sent
    nodecopy.refresh(url, host.fingerprint, folder)
    assert nodecopy.queued_runs(folder) == 0
    assert nodecopy.server_script_runs(url, "abc", node) == [run]  # now from the copy
    assert nodecopy.server_float32_checked(url, "abc", node)
    assert not nodecopy.server_float32_checked(url, "def", node)  # its check failed
    with open_store(url) as store:
        assert [c.script_digest for c in store.precision_checks()] == ["abc", "def"]
        assert store.runs(host.fingerprint) == [run]


@pytest.mark.slow
def test_without_a_copy_an_unreachable_server_is_one_warning_and_the_fallback(
        server: PostgresServer, tmp_path: Path) -> None:
    url = create_database(server.url, "no_copy")
    server.stop()
    result = _user_run(tmp_path, url)
    assert _applied(result)["source"] == "fallback"
    warnings = [line for line in result.stderr.splitlines() if "cannot open store" in line]
    assert len(warnings) == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_server_lost_mid_calibration_stops_it_in_one_line_and_a_rerun_goes_on(
        server: PostgresServer, tmp_path: Path) -> None:
    """The server stops while a calibration measures: the worker stops with one line (exit 1),
    every completed trial is kept, and the same command, once the server is back, continues
    the calibration (it joins it) without measuring those again."""
    from tests.conftest import REPO

    url = create_database(server.url, "restart")
    slow = str(Path(__file__).parent / "workloads" / "slow_numpy.py")
    command = [sys.executable, str(REPO / "cli.py"), "calibrate", "--workload", slow,
               "--targets", "numpy", "--durations", "0.01", "0.02", "--max-repeats", "0",
               "--probe-loop", "0", "--confirm-top", "0", "--heartbeat", "1", "--db", url]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    deadline = time.monotonic() + 300
    while _stored_trials(url) < 1:  # the first trial is in the store
        assert time.monotonic() < deadline and worker.poll() is None, worker.communicate()
        time.sleep(0.2)
    server.stop()
    _, err = worker.communicate(timeout=300)
    lines = [line for line in err.splitlines() if "error" in line]
    assert worker.returncode == 1, err
    assert len(lines) == 1 and "run the same calibrate again" in lines[0]
    assert "Traceback" not in err
    server.start()
    kept = _stored_trials(url)
    assert kept >= 1
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with open_store(url) as store:
        assert len(store.profiles()) == 1
    assert len(_calibration_ids(url)) == 1  # the rerun continued the same calibration


def _stored_trials(url: str) -> int:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, connect_timeout=5) as connection:
            row = connection.execute("SELECT count(*) FROM autotune_trials").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def _calibration_ids(url: str) -> list[int]:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection:
        return [r[0] for r in connection.execute("SELECT id FROM autotune_calibrations")]


@pytest.mark.slow
def test_a_node_predicts_a_script_never_calibrated_from_the_servers_suite(
        server: PostgresServer, tmp_path: Path, cache_root: Path) -> None:
    """The suite's profiles reach apply through the node's copy of the server store, as the
    calibrated profile does: a script with cached features gets a prediction for its model."""
    from autotune.drypass import script_features
    from autotune.scriptcheck import analyse_script
    from tests.test_transfer import suite_profiles

    url = create_database(server.url, "suite")
    with open_store(url) as store:
        for profile in suite_profiles(collect_host()):
            store.save_profile(profile)
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    digest = analyse_script(script).digest
    assert digest is not None
    features = script_features(script, [url], digest, cache_root)  # what `run` would cache
    assert features is not None and features.neurons == 5
    applied = _applied(_user_run(tmp_path, url))
    assert applied["source"] == "suite" and "(5 neurons, 0 synapses" in applied["reason"]
    assert applied["config_key"] == "numpy-float64"
