"""Choosing and applying a configuration: profile, override, fallback, stale profiles."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autotune.apply import choose, fallback_config
from autotune.config import RunConfig, standalone_config
from autotune.errors import ConfigError
from autotune.store import open_store
from tests.helpers import make_host, make_profile


def test_profile_best_depends_on_run_length() -> None:
    host = make_host()
    profile = make_profile(host)
    long_run = choose(host, profile, duration=100.0)
    assert long_run[0] == standalone_config(0) and long_run[1] == "profile"
    assert long_run[3] == pytest.approx(3.5 + 0.1 * 100)
    short_run = choose(host, profile, duration=0.5)
    assert short_run[0] == RunConfig("runtime", "numpy")


def test_invalid_and_failed_entries_are_never_chosen() -> None:
    host = make_host()
    profile = make_profile(host)
    for duration in (0.1, 1, 10, 1000):
        config = choose(host, profile, duration=duration)[0]
        assert profile.entry(config).status == "valid"  # type: ignore[union-attr]


def test_a_script_standalone_cannot_serve_gets_the_best_runtime_config() -> None:
    host = make_host()
    config, source, reason, _ = choose(host, make_profile(host), duration=100.0,
                                       standalone_ok=False)
    assert config == RunConfig("runtime", "cython") and source == "profile"
    assert "runtime can serve" in reason


def test_overrides_win_and_keep_what_they_do_not_name() -> None:
    host = make_host()
    profile = make_profile(host)
    config, source, _, _ = choose(host, profile, duration=100.0, threads=2)
    assert config == standalone_config(2) and source == "override"
    config = choose(host, profile, duration=100.0, precision="float32")[0]
    assert config == standalone_config(0, "float32")
    config = choose(host, profile, duration=100.0, device="runtime")[0]
    assert config.device == "runtime"


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": -1}, "must be an integer >= 0"),
    ({"threads": 5}, "exceeds the 4 usable CPUs"),
    ({"device": "gpu"}, "unknown device"),
    ({"precision": "float16"}, "unknown precision"),
    ({"device": "runtime", "threads": 2}, "applies to cpp_standalone"),
])
def test_bad_overrides_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        choose(make_host(cpus=4), None, **kwargs)  # type: ignore[arg-type]


def test_standalone_override_is_refused_for_a_script_it_cannot_serve() -> None:
    with pytest.raises(ConfigError, match="cannot run this script"):
        choose(make_host(), None, device="cpp_standalone", standalone_ok=False)


def test_fallback_rule_without_a_profile() -> None:
    host = make_host(cpus=4)
    config, source, reason, predicted = choose(host, None)
    assert config == standalone_config(4) and source == "fallback" and predicted is None
    assert "no profile" in reason
    assert fallback_config(make_host(cpus=1), True) == standalone_config(0)
    assert fallback_config(host, False) == RunConfig("runtime", "cython")
    assert fallback_config(host, False, cython_ok=False) == RunConfig("runtime", "numpy")


def _apply_in_child(db_url: str, *args: str) -> dict[str, object]:
    code = (
        "import json, sys, autotune\n"
        "from brian2 import prefs, get_device\n"
        f"a = autotune.apply({', '.join(args)}db={db_url!r})\n"
        "print(json.dumps({'applied': a.to_dict(), 'device': type(get_device()).__name__,\n"
        "  'target': prefs.codegen.target, 'dtype': prefs.core.default_float_dtype.__name__,\n"
        "  'threads': prefs.devices.cpp_standalone.openmp_threads}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_apply_sets_brian2_from_the_stored_profile(db_url: str) -> None:
    from autotune.host import collect_host

    host = collect_host()
    profile = make_profile(host)
    with open_store(db_url) as store:
        store.save_profile(profile)
    state = _apply_in_child(db_url, "duration=100.0, ")
    assert state["applied"]["source"] == "profile"  # type: ignore[index]
    assert state["device"] == "CPPStandaloneDevice"
    short = _apply_in_child(db_url, "duration=0.5, ")
    assert short["device"] == "RuntimeDevice" and short["target"] == "numpy"
    f32 = _apply_in_child(db_url, "duration=100.0, precision='float32', ")
    assert f32["dtype"] == "float32" and f32["applied"]["source"] == "override"  # type: ignore[index]


def test_a_stale_profile_is_not_applied_and_the_change_is_named(db_url: str) -> None:
    import platform

    from autotune.host import collect_host

    current = collect_host()
    old_components = dict(current.components, brian2="2.5.0")
    from autotune.host import HostFingerprint

    old_host = HostFingerprint(old_components, {"hostname": platform.node()})
    with open_store(db_url) as store:
        store.save_profile(make_profile(old_host), old_host)
    state = _apply_in_child(db_url)
    applied = state["applied"]
    assert applied["source"] == "fallback"  # type: ignore[index]
    assert "stale" in applied["reason"] and "brian2 changed" in applied["reason"]  # type: ignore[index]


def test_a_script_needing_numpy_never_gets_cython() -> None:
    host = make_host()
    config, source, reason, _ = choose(host, make_profile(host), duration=100.0,
                                       standalone_ok=False, cython_ok=False)
    assert config == RunConfig("runtime", "numpy") and source == "profile"
    assert "numpy can serve" in reason
