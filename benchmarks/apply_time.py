"""How long ``autotune.apply()`` takes at the top of a user's script, with a stored profile.

    python benchmarks/apply_time.py [--repeats 21] [--postgresql] [--with-runs] [--suite URL]

A temporary store gets a profile for this host (cpp_standalone wins at 10 s); then a script that
imports Brian2 (as every user script does; ~1 s, not counted) times ``import autotune;
autotune.apply(duration=10*second)``, in a fresh process each repeat. That covers reading and
analysing the script, the host fingerprint, the profile read, the build-slot lock, the node's
register of runs and setting Brian2's prefs. The first repeat also fills the compiler-version
cache (and, with ``--suite``, the prediction's); the median is over the rest. Target: under
50 ms. With ``--with-runs`` the store also holds five earlier runs of the script, so that apply
learns from them (the usual case once a script has run). With ``--postgresql`` the store is a
throw-away PostgreSQL server (as in the tests): apply then reads the node's copy of the profile
(the first repeat fetches it from the server). With ``--suite URL`` the store also gets the
calibrated suite held at URL (``calibrate --suite``, this host's) and the script's features are
cached as a ``run`` of it leaves them (CUBA 1000's), so that apply predicts the script's
configuration from the suite, as for a model never calibrated. Python's bytecode cache is on,
as on a user's machine (``PYTHONDONTWRITEBYTECODE``, set on some CI machines, makes every import
compile its module from source and is unset for the measured processes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autotune.config import RunConfig, standalone_config  # noqa: E402
from autotune.costmodel import CostModel  # noqa: E402
from autotune.host import collect_host  # noqa: E402
from autotune.profile import Profile, ProfileEntry  # noqa: E402
from autotune.store import open_store  # noqa: E402
from autotune.workloads import resolve_workload  # noqa: E402

SCRIPT = """
import time, brian2
from brian2 import second
started = time.perf_counter()
import autotune
autotune.apply(duration=10*second, db={db!r}, cache_root=__import__('pathlib').Path({cache!r}),
               record=False)
print(1000 * (time.perf_counter() - started))
"""


def _store_profile(url: str) -> None:
    host = collect_host()
    entries = (
        ProfileEntry(RunConfig("runtime", "cython"), "valid", CostModel(3.0, 0.5, 0.1, 2, 2)),
        ProfileEntry(RunConfig("runtime", "numpy"), "valid", CostModel(1.5, 1.2, 0.1, 2, 2)),
        ProfileEntry(standalone_config(0), "valid", CostModel(3.5, 0.1, 0.1, 2, 2, 9.0)))
    profile = Profile(host.fingerprint, dict(host.components),
                      resolve_workload("cuba", 100).to_dict(), 10.0, 0.05, entries,
                      RunConfig("runtime", "cython"), "2026-11-30T00:00:00+00:00", 1, ())
    with open_store(url) as store:
        store.save_profile(profile, host)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--postgresql", action="store_true", help="a PostgreSQL store")
    parser.add_argument("--with-runs", action="store_true",
                        help="five earlier runs of the script in the store to learn from")
    parser.add_argument("--suite", metavar="URL",
                        help="a store holding this host's calibrated suite: predict from it")
    args = parser.parse_args()
    if args.postgresql:
        from tests.pgserver import create_database, start_postgres

        with start_postgres() as server:
            _measure(create_database(server, "apply_time"), args.repeats, "PostgreSQL",
                     args.with_runs, args.suite)
    else:
        _measure(None, args.repeats, "SQLite", args.with_runs, args.suite)


def _store_suite(url: str, suite_url: str, text: str, cache: Path) -> int:
    """Copy the suite's profiles into the store and cache the script's features (CUBA 1000's,
    as a ``run`` of it would); how many members the store then holds."""
    from autotune.drypass import cache_file
    from autotune.features import ModelFeatures
    from autotune.scriptcheck import script_digest
    from autotune.transfer import members_of

    with open_store(suite_url) as source:
        profiles = members_of(source.profiles())
    with open_store(url) as store:
        for member in profiles:
            store.save_profile(member.profile)
    features = ModelFeatures(1000, 3000, 10000, 80000, 0, 6, 0, 6, 0)
    path = cache_file(cache, script_digest(text), [])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"arguments": [], "features": features.to_dict()}))
    return len(profiles)


def _store_runs(url: str, text: str) -> None:
    """Five earlier runs of the script with this text (standalone, 10 s)."""
    from autotune.runrecord import RunRecord
    from autotune.scriptcheck import script_digest

    host = collect_host()
    with open_store(url) as store:
        for build in (3.4, 3.5, 3.6, 3.5, 3.7):
            store.record_run(RunRecord(
                host.fingerprint, None, None, standalone_config(0).key, "profile", None, 10.0,
                None, None, build + 1.0, build, 1.0, None, 0, "2026-11-30T00:00:00+00:00",
                script_digest=script_digest(text), cold=False))


def _measure(server_url: str | None, repeats: int, kind: str, with_runs: bool,
             suite_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="apply-time-") as work:
        url = server_url or f"sqlite:///{work}/store.db"
        _store_profile(url)
        script = Path(work) / "user_script.py"
        script.write_text(SCRIPT.format(db=url, cache=f"{work}/cache"))
        if suite_url:
            members = _store_suite(url, suite_url, script.read_text(), Path(work) / "cache")
            kind += f", predicted from a suite of {members}"
        if with_runs:
            _store_runs(url, script.read_text())
            kind += ", five earlier runs of the script"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        times = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                 check=True, env=env)
            times.append(float(out.stdout.strip().splitlines()[-1]))
    rest = sorted(times[1:])
    print(f"autotune.apply() with a stored profile ({kind}): first {times[0]:.1f} ms (fills "
          f"the compiler-version cache), then median {statistics.median(rest):.1f} ms "
          f"(min {rest[0]:.1f}, max {rest[-1]:.1f}) over {len(rest)} runs")


if __name__ == "__main__":
    main()
