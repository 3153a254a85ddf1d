"""Run configurations: validation, keys, round trips, the compiler-flag allow-list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autotune.config import (
    FLAG_PRESETS,
    RunConfig,
    all_configs,
    check_compiler_flags,
    standalone_config,
)
from autotune.errors import ConfigError


@given(st.sampled_from(all_configs(max_threads=8)))
def test_round_trip_through_dict(config: RunConfig) -> None:
    assert RunConfig.from_dict(config.to_dict()) == config


def test_keys_are_unique_across_the_space() -> None:
    configs = all_configs(max_threads=4)
    assert len({c.key for c in configs}) == len(configs)
    # numpy x2 precisions, cython x2 x presets, standalone 0..4 threads x2 x presets x pgo
    assert len(configs) == 2 + 2 * len(FLAG_PRESETS) + 5 * 2 * len(FLAG_PRESETS) * 2


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "gpu", "target": "cpp"}, "unknown device"),
    ({"device": "runtime", "target": "cpp"}, "unknown runtime target"),
    ({"device": "runtime", "target": "numpy", "threads": 2}, "cpp_standalone only"),
    ({"device": "cpp_standalone", "target": "cpp", "threads": -1}, "between 0"),
    ({"device": "cpp_standalone", "target": "cpp", "threads": 10**6}, "between 0"),
    ({"device": "runtime", "target": "numpy", "precision": "float16"}, "unknown precision"),
    ({"device": "runtime", "target": "cython", "flags": "-O9"}, "unknown compiler-flag preset"),
    ({"device": "runtime", "target": "numpy", "flags": "O2"}, "compiled targets"),
])
def test_invalid_configs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kwargs)  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(ConfigError, match="unknown configuration keys: shell"):
        RunConfig.from_dict({"device": "runtime", "target": "numpy", "shell": "rm -rf /"})
    with pytest.raises(ConfigError, match="lacks"):
        RunConfig.from_dict({"device": "runtime"})
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.from_dict(["runtime"])  # type: ignore[arg-type]


@pytest.mark.parametrize("flag", [
    "-fplugin=/tmp/evil.so", "-B/tmp", "-wrapper", "@file", "-O3; rm -rf ~", "$(id)",
    "-march=native && touch x", "`id`", "-o/etc/passwd", "-Wl,-rpath,/tmp",
])
def test_hostile_compiler_flags_are_refused(flag: str) -> None:
    with pytest.raises(ConfigError, match="allow-list"):
        check_compiler_flags(["-O3", flag])


def test_presets_pass_the_allow_list_and_describe_themselves() -> None:
    for flags in FLAG_PRESETS.values():
        if flags is not None:
            assert check_compiler_flags(list(flags)) == flags
    assert standalone_config(2, "float32", "O2").key == "cpp_standalone-t2-float32-O2"
    assert "2 OpenMP threads" in standalone_config(2).describe()
    assert "no OpenMP" in standalone_config(0).describe()
