"""The command line as a user meets it: real subprocesses, exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

HERE = Path(__file__).parent / "workloads"
ONE_RUN = """\
from brian2 import *
G = NeuronGroup(50, "dv/dt = (1.1 - v) / (10*ms) : 1", threshold="v > 1", reset="v = 0",
                method="exact")
G.v = "i / 50.0"
M = SpikeMonitor(G)
run(100*ms)
print("spikes", M.num_spikes)
"""
TWO_RUNS = ONE_RUN + "run(50*ms)\nprint('spikes', M.num_spikes)\n"


def _assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert text in lines[0]
    assert "Traceback" not in result.stderr


def test_fingerprint_json() -> None:
    result = run_cli("fingerprint", "--json")
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert len(document["fingerprint"]) == 16
    assert {"cpu_model", "usable_cpus", "compiler", "brian2"} <= set(document["components"])


@pytest.mark.parametrize("args, text", [
    (["calibrate", "--workload", "nope"], "unknown workload 'nope'"),
    (["calibrate", "--workload", str(HERE / "no_simulate.py")], "does not define simulate"),
    (["calibrate", "--trials", "0"], "must be at least 1"),
    (["calibrate", "--target-duration", "-1"], "must be positive"),
    (["calibrate", "--target-duration", "10 parsecs"], "is not a time"),
    (["calibrate", "--size", "abc"], "is not an integer"),
    (["calibrate", "--max-threads", "9999"], "exceeds the"),
    (["calibrate", "--max-threads", "-1"], "must be >= 0"),
    (["calibrate", "--confirm-rounds", "4", "2"], "must be at least the fewest (4)"),
    (["calibrate", "--confirm-rounds", "2"], "expected 2 arguments"),
    (["calibrate", "--suite", "--suite-members", "cuba:abc"], "must be a whole number"),
    (["calibrate", "--suite", "--suite-members", "nope:100"], "unknown workload 'nope'"),
    (["calibrate", "--suite", "--workload", "stdp"], "--suite calibrates its own members"),
    (["run", "--num-threads", "-1", "x.py"], "must be an integer >= 0"),
    (["run", "--num-threads", "1000000", "x.py"], "exceeds the"),
    (["run", "--device", "gpu", "x.py"], "invalid choice: 'gpu'"),
    (["run", "--precision", "float16", "x.py"], "invalid choice"),
    (["run", "missing_script.py"], "does not exist"),
    (["run", "-m", "nosuchpackage.sim"], "cannot find module 'nosuchpackage.sim'"),
    (["run", "--db", "store.db", "-m"], "run -m needs a module's name"),
    (["run", "--duration", "1"], "run needs a script (run sim.py ARGS) or a module"),
    (["check-precision", "--observe", "M.num_spikes", "-m"], "check-precision -m needs a"),
    (["check-precision", "-m", "nosuchpackage.sim"], "cannot find module 'nosuchpackage.sim'"),
    (["check-precision", "--json"], "check-precision needs a script"),
    (["show", "--workload", "nope"], "unknown workload"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], text: str, tmp_path: Path
                                               ) -> None:
    script = tmp_path / "x.py"
    script.write_text(ONE_RUN)
    _assert_one_line_error(run_cli(*args, cwd=tmp_path), text)


@pytest.mark.parametrize("command", [["show"], ["run", "x.py"]])
def test_a_corrupt_store_is_bad_input_and_left_untouched(command: list[str], tmp_path: Path
                                                         ) -> None:
    (tmp_path / "x.py").write_text(ONE_RUN)
    path = tmp_path / "store.db"
    path.write_text("definitely not sqlite")
    result = run_cli(command[0], "--db", f"sqlite:///{path}", *command[1:], cwd=tmp_path)
    _assert_one_line_error(result, "not a SQLite database, or a damaged one; give another --db")
    assert path.read_text() == "definitely not sqlite"


def test_show_with_no_profile(db_url: str) -> None:
    result = run_cli("show", "--json", "--db", db_url)
    assert result.returncode == 0
    assert json.loads(result.stdout)["profiles"] == []
    human = run_cli("show", "--db", db_url)
    assert "no profile for this host" in human.stdout


@pytest.mark.slow
def test_run_without_a_profile_uses_the_fallback_and_gives_plain_python_results(
        tmp_path: Path, db_url: str) -> None:
    script = tmp_path / "two_runs.py"
    script.write_text(TWO_RUNS)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           check=True, timeout=300)
    tuned = run_cli("run", "--db", db_url, str(script))
    assert tuned.returncode == 0, tuned.stderr
    assert tuned.stdout == plain.stdout
    assert "cpp_standalone cannot serve" in tuned.stderr and "calls run() 2 times" in tuned.stderr
    assert "fallback" in tuned.stderr and "runtime" in tuned.stderr


def test_run_m_runs_a_module_as_python_m_does(tmp_path: Path, db_url: str) -> None:
    """``run -m pkg.args``: the module's relative import works, everything after its name is
    its own (``--duration`` too), and its exit code is the run's."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("WORD = 'relative'\n")
    (package / "args.py").write_text("import sys\nfrom .helper import WORD\n"
                                     "print(WORD, __name__, sys.argv[1:])\nsys.exit(3)\n")
    result = run_cli("run", "--db", db_url, "--device", "runtime", "-m", "pkg.args", "a",
                     "--duration", "1", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == "relative __main__ ['a', '--duration', '1']"


def test_run_passes_arguments_and_exit_code(tmp_path: Path, db_url: str) -> None:
    script = tmp_path / "args.py"
    script.write_text("import sys\nprint(sys.argv[1:])\nsys.exit(3)\n")
    result = run_cli("run", "--db", db_url, "--device", "runtime", str(script), "a", "--b")
    assert result.returncode == 3
    assert result.stdout.strip() == "['a', '--b']"


@pytest.mark.slow
def test_show_ranks_the_calibrated_profile(calibrated: dict[str, object]) -> None:
    url = str(calibrated["url"])
    result = run_cli("show", "--json", "--db", url)
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)["profiles"][0]
    # the best is the fastest, or the cheapest configuration statistically tied with it
    assert profile["tied_with_best"][0] == profile["ranking"][0]["config"]
    assert profile["best_key"] in profile["tied_with_best"]
    assert profile["baseline"] == "cython-float64-default"
    assert profile["speedup_vs_default"] >= 1.0
    predictions = [row["predicted_s"] for row in profile["ranking"]]
    assert predictions == sorted(predictions)
    human = run_cli("show", "--db", url)
    assert "best:" in human.stdout and "cython-float64-default" in human.stdout


@pytest.mark.parametrize("confirmed, confirmation, expected", [
    (("cpp_standalone-t0-float64-default", "cython-float64-default"),
     {"rounds": 4, "gaps": {"cython-float64-default": {
         "ratio": 1.137, "low": 1.106, "high": 1.168, "rounds": 4}}},
     "confirmed in 4 interleaved rounds, paired: cpp_standalone-t0-float64-default fastest; "
     "cython-float64-default +13.7 % (80 %: +10.6 % to +16.8 %, 4 rounds: slower)"),
    ((), {"rounds": 0, "gaps": {}}, "no other configuration came within 25 % of the best"),
    ((), {"rounds": 0, "within": 0.1, "gaps": {}},
     "no other configuration came within 10 % of the best"),
])
def test_show_states_the_confirmation(db_url: str, confirmed: tuple[str, ...],
                                      confirmation: dict[str, object], expected: str) -> None:
    from dataclasses import replace

    from autotune.host import collect_host
    from autotune.store import open_store
    from tests.helpers import make_profile

    profile = replace(make_profile(collect_host()), confirmed=confirmed,
                      confirmation=confirmation)
    with open_store(db_url) as store:
        store.save_profile(profile)
    human = run_cli("show", "--db", db_url)
    assert human.returncode == 0, human.stderr
    assert expected in " ".join(human.stdout.split())


def test_show_gives_one_row_per_calibration_when_the_host_has_several(db_url: str) -> None:
    from autotune.host import collect_host
    from autotune.store import open_store
    from tests.helpers import make_profile

    host = collect_host()
    with open_store(db_url) as store:
        for workload, size in (("cuba", 100), ("cuba", 200), ("stdp", 50)):
            store.save_profile(make_profile(host, workload, size))
    overview = run_cli("show", "--db", db_url)
    assert overview.returncode == 0, overview.stderr
    rows = [line for line in overview.stdout.splitlines() if "(size " in line]
    assert [row.split("│")[1].strip() for row in rows] == [
        "cuba (size 100)", "cuba (size 200)", "stdp (size 50)"]
    # make_profile's best at 10 s is standalone without OpenMP: 3.5 + 0.1 * 10 = 4.5 s
    assert all("cpp_standalone-t0-float64-default" in row and "4.5 s" in row for row in rows)
    assert "thread scaling" not in overview.stdout
    one = run_cli("show", "--db", db_url, "--workload", "cuba", "--size", "200")
    assert "cuba (size 200) — profile of" in one.stdout and "thread scaling" in one.stdout
    assert "cuba (size 100)" not in one.stdout


def test_a_suite_keeps_the_members_this_host_calibrated_and_says_so(db_url: str) -> None:
    """README command 1 calibrates the suite; run again (after an interrupted one, say), it
    keeps every member already calibrated, reads the features their profiles lack, and
    tells which member it is at."""
    from autotune.host import collect_host
    from autotune.store import open_store
    from tests.helpers import make_profile

    with open_store(db_url) as store:
        for workload, size in (("cuba", 100), ("stdp", 50)):
            store.save_profile(make_profile(collect_host(), workload, size))
    before = run_cli("show", "--db", db_url)
    assert "scripts never calibrated get the newest profile's choice" in before.stdout
    suite = run_cli("calibrate", "--suite", "--suite-members", "cuba:100", "stdp:50",
                    "--db", db_url, timeout=300)
    assert suite.returncode == 0, suite.stderr
    assert "cuba 100 (1 of 2): already calibrated on this host, kept" in suite.stderr
    assert "stdp 50 (2 of 2): already calibrated on this host, kept" in suite.stderr
    assert "suite of 2 models calibrated" in suite.stdout
    after = " ".join(run_cli("show", "--db", db_url).stdout.split())
    assert ("scripts never calibrated are predicted for their own model from this host's "
            "calibrations of") in after


@pytest.mark.slow
def test_run_applies_the_profile_and_results_match_plain_python(
        calibrated: dict[str, object], tmp_path: Path) -> None:
    url = str(calibrated["url"])
    script = tmp_path / "one_run.py"
    script.write_text(ONE_RUN)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           check=True, timeout=300)
    source = "[profile:"
    for duration in ("10", "0.001"):
        tuned = run_cli("run", "--db", url, "--duration", duration, str(script))
        assert tuned.returncode == 0, tuned.stderr
        assert tuned.stdout == plain.stdout
        assert source in tuned.stderr.replace("\n", " ")
        assert "run finished in" in tuned.stderr and "peak memory" in tuned.stderr
        # the second learns from the first, unless other work crowded it (a busy host)
        if "so its times are not learned from" not in " ".join(tuned.stderr.split()):
            source = "[script:"


def test_calibration_progress_prints_a_failed_trials_reason_as_written() -> None:
    """A trial's error can hold brackets (``[Errno 2]``, ``v[/]``, a path): the progress line
    says it verbatim, never as rich markup, which dropped ``[b]`` and raised on ``[/x]``."""
    from rich.console import Console

    from autotune.config import RunConfig
    from autotune.records import Evaluation
    from autotune.report import calibration_progress

    console = Console(width=200, record=True)
    _, on_event = calibration_progress(console, 4)
    reason = "exit 1: FileNotFoundError: [Errno 2] /tmp/a[b]/[/x].py"
    on_event("evaluated", {"evaluation": Evaluation(RunConfig("runtime", "numpy"), None,
                                                    reason=reason), "done": 1})
    assert reason in console.export_text()
