"""A standalone build made beside a run of another configuration, for the next run."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from autotune import buildahead
from autotune.buildahead import AheadPlan, worth_building_ahead
from autotune.config import RunConfig, standalone_config
from autotune.costmodel import CostModel
from tests.conftest import run_cli

NUMPY = RunConfig("runtime", "numpy")

# Prints, then writes a file after its run: what a build beside a run must never show or do.
# Its numpy loop takes seconds, its standalone one milliseconds.
SCRIPT = """
import sys
from brian2 import *
G = NeuronGroup(20, 'dv/dt = (1.2 - v) / (10*ms) : 1', threshold='v > 1', reset='v = 0',
                method='exact')
M = SpikeMonitor(G)
print('set up')
run(6*second)
print('spikes', M.num_spikes)
open(sys.argv[1], 'a').write('ran\\n')
"""


T0 = standalone_config(0)


@pytest.mark.parametrize(("chosen", "predicted", "put_off", "cpus", "in_use", "runs", "worth"), [
    # STDP at 10 s on 2 CPUs: 24.0 s numpy; the 19.6-s build takes 39.2 s on the one CPU left,
    # a 15.2-s wait after the run, which the next run (18.5 s faster) repays
    (NUMPY, 24.0, T0, 2, 0, 1, True),
    # 11.0 s numpy, 9.1-s build: a 7.2-s wait, more than one run saves (6.7 s) ...
    (NUMPY, 11.0, T0, 2, 0, 1, False),
    (NUMPY, 11.0, T0, 2, 0, 2, True),   # ... but not more than two runs save
    (NUMPY, 11.0, T0, 4, 0, 1, True),   # on 4 CPUs the build has 3: a 1.1-s wait
    (NUMPY, 2.2, T0, 2, 0, 1, False),   # a 1-s run ends long before the build
    (NUMPY, 24.0, T0, 2, 1, 1, False),  # other work keeps the other CPU busy
    (standalone_config(2), 24.0, T0, 2, 0, 1, False),  # the run takes both CPUs
    (NUMPY, 24.0, standalone_config(0, pgo=True), 2, 0, 1, False),  # PGO's first run is its own
    (NUMPY, None, T0, 2, 0, 1, False),  # nothing predicted: nothing to compare
])
def test_a_build_is_made_beside_a_run_when_the_wait_it_adds_is_repaid(
        chosen: RunConfig, predicted: float | None, put_off: RunConfig, cpus: int, in_use: int,
        runs: int, worth: bool) -> None:
    warm, cold = (5.5, 19.6) if predicted == 24.0 else (4.3 if predicted == 11.0 else 2.0, 9.1)
    assert worth_building_ahead(chosen, predicted, put_off, warm, cold, cpus, in_use,
                                runs) is worth


def _said(log: str, phrase: str) -> bool:
    """Whether the log says ``phrase`` (its lines are wrapped to the console's width)."""
    return phrase in " ".join(log.split())


def _seconds(log: str, pattern: str) -> float | None:
    """The number of seconds ``pattern`` (one group) finds in the log, None when absent."""
    found = re.search(pattern, " ".join(log.split()))
    return float(found.group(1)) if found else None


def _script(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "model.py"
    script.write_text(SCRIPT)
    return script, tmp_path / "after-run.txt"


def _module(tmp_path: Path) -> tuple[Path, Path]:
    """:data:`SCRIPT` as ``pkg/sim.py``, its network taken from ``pkg/net.py`` with a relative
    import: it runs only as ``python -m pkg.sim`` from ``tmp_path``."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    head, tail = SCRIPT.split("print('set up')")
    (package / "net.py").write_text(head)
    (package / "sim.py").write_text("import sys\nfrom brian2 import *\nfrom .net import G, M\n"
                                    "print('set up')" + tail)
    return package / "sim.py", tmp_path / "after-run.txt"


@pytest.mark.slow
def test_a_build_beside_the_run_compiles_without_running_or_showing_anything(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The child stops at run(): the project is compiled, nothing after run() happens, and
    the script's output stays its own."""
    script, marker = _script(tmp_path)
    plan = AheadPlan(standalone_config(0), tmp_path / "builds" / "t0", 9.0)
    ahead = buildahead.start(plan, script, [str(marker)])
    assert ahead is not None
    assert buildahead.finish(ahead)
    assert (plan.folder / "slot-0" / "main").exists()
    assert not marker.exists()
    assert "set up" not in capfd.readouterr().out
    # the slot is free again for the next run
    from autotune.buildslots import acquire_build_slot

    slot = acquire_build_slot(plan.folder)
    assert slot.index == 0
    slot.release()


@pytest.mark.slow
@pytest.mark.parametrize("as_module", [False, True], ids=["script", "run-m"])
def test_a_script_run_again_finds_the_build_made_beside_its_first_run(
        tmp_path: Path, db_url: str, as_module: bool) -> None:
    """A profile where a 6-s run has numpy predicted 10.2 s against standalone's 3.3 s plus
    an 8 s cold build: the first run is numpy with standalone built beside it, the second is
    standalone with nothing to compile (its binary is not even relinked). The same for a
    module of a package run with ``run -m``, whose build beside the run imports it as
    ``python -m`` does (its relative import fails run as a script)."""
    from autotune.buildslots import cpus_busy_elsewhere
    from autotune.host import collect_host
    from autotune.paths import script_owner, standalone_build_dir
    from autotune.store import open_store
    from tests.helpers import make_profile

    host = collect_host()
    if host.usable_cpus < 2:
        pytest.skip("one CPU: no CPU to build beside the run")
    profile = make_profile(host)
    costs = {"numpy-float64": CostModel(3.0, 1.2, 0.1, 2, 2),
             standalone_config(0).key: CostModel(3.0, 0.05, 0.1, 2, 2, 8.0)}
    profile = replace(profile, entries=tuple(
        replace(e, cost=costs.get(e.config.key, e.cost)) for e in profile.entries))
    with open_store(db_url) as store:
        store.save_profile(profile)
    script, marker = _module(tmp_path) if as_module else _script(tmp_path)
    target = ["-m", "pkg.sim"] if as_module else [str(script)]
    busy_before = cpus_busy_elsewhere()
    started = time.perf_counter()
    first = run_cli("-v", "run", "--db", db_url, *target, str(marker), cwd=tmp_path)
    wall = time.perf_counter() - started
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "set up"
    # not "nothing is built beside this run", said where other work keeps the CPUs busy
    if not _said(first.stderr, "is built beside this run, at the lowest priority"):
        assert _said(first.stderr, "applied runtime/numpy"), first.stderr
        if (_said(first.stderr, "nothing is built beside this run: other work keeps")
                or max(busy_before, cpus_busy_elsewhere()) >= host.usable_cpus - 1):
            pytest.skip("other work kept the spare CPU busy: nothing is built beside a run")
        pytest.fail(f"no build beside a numpy run on a quiet host:\n{first.stderr}")
    assert _said(first.stderr, "applied runtime/numpy")
    assert _said(first.stderr, "is built for the next run"), first.stderr
    # the run is recorded with its own time, not the build's that went on after it: what it
    # took and the wait after it fit in the command's wall time only if neither holds the other
    took = _seconds(first.stderr, r"took (\d+\.\d+) s \(")
    waited = _seconds(first.stderr, r"(\d+\.\d+) s of it after the run ended") or 0.0
    assert took is not None, first.stderr
    assert took + waited <= wall + 0.06, (took, waited, wall, first.stderr)  # logged rounded
    folder = standalone_build_dir(Path(os.environ["BRIAN2_AUTOTUNE_CACHE"]), host.fingerprint,
                                  script_owner(script), standalone_config(0))
    built = folder / "slot-0" / "main"
    linked = built.stat().st_mtime_ns
    second = run_cli("-v", "run", "--db", db_url, *target, str(marker), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert _said(second.stderr, "applied cpp_standalone, no OpenMP"), second.stderr
    # the look at what to build ahead repeats no line of the choice's
    assert second.stderr.count("predicted for this run") == 1, second.stderr
    assert built.stat().st_mtime_ns == linked
    assert marker.read_text() == "ran\nran\n"
    assert first.stdout == second.stdout


@pytest.mark.slow
def test_a_build_that_fails_beside_a_run_is_not_tried_again_for_that_text(
        tmp_path: Path) -> None:
    """A Python function in the model's equations, which standalone has no code for: the
    build fails, and is remembered for that script text only."""
    script = tmp_path / "model.py"
    script.write_text("from brian2 import *\n"
                      "@check_units(x=1, result=1)\n"
                      "def halve(x):\n"
                      "    return x / 2\n"
                      "G = NeuronGroup(5, 'dv/dt = -halve(v) / (10*ms) : 1')\n"
                      "run(10*ms)\n")
    plan = AheadPlan(standalone_config(0), tmp_path / "builds" / "t0", 9.0, "digest-1")
    ahead = buildahead.start(plan, script, [])
    assert ahead is not None
    assert not buildahead.finish(ahead)
    assert not (plan.folder / "slot-0" / "main").exists()
    assert buildahead.failed_before(plan.folder, "digest-1")
    assert not buildahead.failed_before(plan.folder, "digest-2")  # an edited script tries again
    assert "halve" in (plan.folder / buildahead.LOG_NAME).read_text()
