"""``check-precision``: float32 reaches a user's script only after a check on that script."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from autotune.config import RunConfig
from autotune.costmodel import CostModel
from autotune.profile import ProfileEntry
from autotune.store import open_store
from tests.conftest import run_cli
from tests.helpers import make_profile

NUMPY32 = RunConfig("runtime", "numpy", precision="float32")

# Integer state only: float32 computes exactly what float64 does.
EXACT = """
from brian2 import *
G = NeuronGroup(30, '''v : integer
                       drive : integer (constant)''', threshold='v >= 100', reset='v = 0')
G.drive = 'i % 5 + 1'
G.run_regularly('v += drive', dt=0.1*ms)
M = SpikeMonitor(G)
run(50*ms)
print('spikes', M.num_spikes)
"""

# 1 + 1e-8 rounds back to 1 in float32: its neurons never reach the threshold.
FRAGILE = """
from brian2 import *
G = NeuronGroup(5, 'v : 1', threshold='v > 1.00005', reset='v = 1')
G.v = 1
G.run_regularly('v += 1e-8', dt=0.1*ms)
M = SpikeMonitor(G)
run(1*second)
"""


@pytest.fixture
def float32_store(db_url: str) -> str:
    """A store whose profile's best configuration for short runs is numpy in float32."""
    from autotune.host import collect_host

    base = make_profile(collect_host())
    entry = ProfileEntry(NUMPY32, "valid", CostModel(1.2, 1.0, 0.01, 2, 2))
    with open_store(db_url) as store:
        store.save_profile(replace(base, entries=(*base.entries, entry)))
    return db_url


def _last_run(url: str) -> tuple[str, str]:
    with open_store(url) as store:
        run = store.runs()[-1]
    return run.config_key, run.source


@pytest.mark.slow
def test_float32_reaches_a_script_only_after_its_check_passes(float32_store: str,
                                                              tmp_path: Path) -> None:
    script = tmp_path / "exact.py"
    script.write_text(EXACT)
    before = run_cli("run", "--db", float32_store, str(script))
    assert before.returncode == 0, before.stderr
    assert _last_run(float32_store)[0] == "numpy-float64"
    assert "check it with `brian2-autotune check-precision" in " ".join(before.stderr.split())
    check = run_cli("check-precision", "--json", "--db", float32_store, str(script))
    assert check.returncode == 0, check.stderr
    verdict = json.loads(check.stdout)
    assert verdict["passed"] is True and verdict["config_key"] == "numpy-float32"
    assert verdict["observables"]["spikemonitor.num_spikes"][0] > 0
    after = run_cli("run", "--db", float32_store, str(script))
    assert after.returncode == 0, after.stderr
    assert _last_run(float32_store)[0] == "numpy-float32"
    assert after.stdout == before.stdout  # exact model: the same spikes in both precisions
    script.write_text(EXACT + "print('edited')\n")  # a new text is unchecked again
    edited = run_cli("run", "--db", float32_store, str(script))
    assert edited.returncode == 0, edited.stderr
    assert _last_run(float32_store)[0] == "numpy-float64"


@pytest.mark.slow
def test_a_script_float32_changes_is_refused_and_kept_in_float64(float32_store: str,
                                                                 tmp_path: Path) -> None:
    script = tmp_path / "fragile.py"
    script.write_text(FRAGILE)
    check = run_cli("check-precision", "--db", float32_store, "--observe", "M.num_spikes",
                    str(script))
    assert check.returncode == 1, check.stderr
    assert "float32 refused for fragile.py: M.num_spikes" in " ".join(check.stdout.split())
    with open_store(float32_store) as store:
        stored = store.precision_checks()[-1]
    assert not stored.passed and stored.observables["M.num_spikes"][0] > 0
    assert stored.observables["M.num_spikes"][1] == 0
    later = run_cli("run", "--db", float32_store, str(script))
    assert later.returncode == 0, later.stderr
    assert _last_run(float32_store)[0] == "numpy-float64"
    shown = json.loads(run_cli("show", "--json", "--db", float32_store).stdout)
    assert [(c["passed"], c["digest"]) for c in shown["float32_checks"]] == [
        (False, stored.script_digest)]
    assert "refused" in run_cli("show", "--db", float32_store).stdout


@pytest.mark.parametrize("script_text, args, message", [
    (EXACT, ["--observe", "no_such_name"], "cannot evaluate --observe 'no_such_name'"),
    ("from brian2 import *\nG = NeuronGroup(2, 'v : 1')\nrun(1*ms)\n", [],
     "leaves no monitor behind to compare"),
    ("raise SystemExit(3)\n", [], "failed in float64"),
])
def test_a_check_with_nothing_to_compare_says_so_in_one_line(
        float32_store: str, tmp_path: Path, script_text: str, args: list[str],
        message: str) -> None:
    script = tmp_path / "bad.py"
    script.write_text(script_text)
    done = run_cli("check-precision", "--db", float32_store, *args, str(script))
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("brian2-autotune: error: ") and message in last
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_module_is_checked_and_run_as_python_m_runs_it(float32_store: str,
                                                         tmp_path: Path) -> None:
    """``check-precision -m pkg.sim`` and ``run -m pkg.sim``: a package's module whose model
    comes from a relative import (which ``check-precision pkg/sim.py`` cannot run) is checked,
    and its runs get float32 once the check passed."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(EXACT.split("run(")[0])
    (package / "sim.py").write_text("from brian2 import run, ms\nfrom .model import G, M\n"
                                    "run(50*ms)\nprint('spikes', M.num_spikes)\n")
    check = run_cli("check-precision", "--json", "--db", float32_store, "-m", "pkg.sim",
                    cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    verdict = json.loads(check.stdout)
    assert verdict["passed"] is True and verdict["config_key"] == "numpy-float32"
    run = run_cli("run", "--db", float32_store, "-m", "pkg.sim", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("spikes ") and int(run.stdout.split()[1]) > 0
    assert _last_run(float32_store)[0] == "numpy-float32"
