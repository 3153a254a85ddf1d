"""Identical nodes splitting one calibration through one PostgreSQL store.

Worker processes play nodes: the same host fingerprint (this machine's), different node names
(``BRIAN2_AUTOTUNE_NODE``), their own build caches, one real server started by the tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import psutil
import pytest

from autotune.store import open_store
from tests.conftest import REPO

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]
WORKLOADS = Path(__file__).parent / "workloads"


def _worker(url: str, node: str, tmp_path: Path, workload: str, *extra: str
            ) -> subprocess.Popen[str]:
    env = {**os.environ, "BRIAN2_AUTOTUNE_NODE": node,
           "BRIAN2_AUTOTUNE_CACHE": str(tmp_path / f"cache-{node}")}
    args = ["calibrate", "--workload", workload, "--targets", "numpy", "--durations", "0.01",
            "0.03", "--max-repeats", "0", "--probe-loop", "0", "--confirm-top", "2",
            # both configurations are confirmed, however far apart a busy host measures them
            "--confirm-within", "9", "--confirm-rounds", "1", "1", "--db", url, "--json", *extra]
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _measured_by_node(url: str) -> list[tuple[str, str]]:
    """(configuration, node) of every measured trial of the store's one study."""
    name = optuna.get_all_study_names(url)[0]
    study = optuna.load_study(study_name=name, storage=url)
    return [(t.user_attrs["config"], t.user_attrs.get("node", "?")) for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and "config" in t.user_attrs]


def test_identical_nodes_share_one_study_and_write_one_profile(postgres_url: str,
                                                               tmp_path: Path) -> None:
    workers = [_worker(postgres_url, f"node-{k}", tmp_path, "cuba", "--size", "40")
               for k in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    measured = _measured_by_node(postgres_url)
    per_config = Counter(config for config, _ in measured)
    assert set(per_config) == {"numpy-float64", "numpy-float32"}
    assert all(count == 1 for count in per_config.values()), measured  # none measured twice
    with open_store(postgres_url) as store:
        profiles = store.profiles()
        calibrations = {c.id for c in (store.resumable_calibration(
            profiles[0].fingerprint, profiles[0].workload["signature"]),) if c}
    assert len(profiles) == 1 and not calibrations  # one profile, and nothing left running
    documents = [json.loads(out) for out, _ in outputs]
    assert sum(d["joined"] for d in documents) == 1  # one started it, the other joined
    assert sum(d["profile"] is not None for d in documents) == 1  # written once, by one node
    # the paired confirmation round is stored on the server and ranks the profile
    with open_store(postgres_url) as store:
        confirm = store.trials(documents[0]["calibration_id"], purpose="confirm")
    profile = profiles[0]
    assert len(profile.confirmed) == 2 and profile.confirmed[0] == profile.ranked()[0].config.key
    assert len(confirm) == 2 and {r.config.key for r in confirm} == set(profile.confirmed)


def test_a_node_that_dies_mid_trial_loses_nothing(postgres_url: str, tmp_path: Path) -> None:
    """Node a is killed (with everything it started) while measuring; node b, joining, finds
    a's trial silent, measures that configuration itself and finishes the calibration."""
    slow = str(WORKLOADS / "slow_numpy.py")
    first = _worker(postgres_url, "a", tmp_path, slow, "--heartbeat", "1")
    deadline = time.monotonic() + 300
    while not any(node == "a" for _, node in _claims(postgres_url)):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.2)
    tree = psutil.Process(first.pid).children(recursive=True)
    for process in [psutil.Process(first.pid), *tree]:
        process.send_signal(signal.SIGKILL)
    first.wait()
    second = _worker(postgres_url, "b", tmp_path, slow, "--heartbeat", "1")
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert '"joined": true' in out
    measured = _measured_by_node(postgres_url)
    assert {config for config, _ in measured} == {"numpy-float64", "numpy-float32"}
    assert all(node == "b" for _, node in measured)  # a measured nothing to the end
    name = optuna.get_all_study_names(postgres_url)[0]
    trials = optuna.load_study(study_name=name, storage=postgres_url).trials
    dead = [t for t in trials if t.user_attrs.get("node") == "a"]
    assert dead and all(t.state == optuna.trial.TrialState.FAIL for t in dead)
    assert any(t.system_attrs.get("retry_history") for t in trials)  # queued again for b
    with open_store(postgres_url) as store:
        assert len(store.profiles()) == 1


def _claims(url: str) -> list[tuple[str, str]]:
    try:
        names = optuna.get_all_study_names(url)
    except Exception:  # noqa: BLE001 - the schema may not exist yet
        return []
    if not names:
        return []
    study = optuna.load_study(study_name=names[0], storage=url)
    return [(t.user_attrs.get("config", ""), t.user_attrs.get("node", ""))
            for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))]
