"""The workload contract: resolving names and files, signatures, observables."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.errors import WorkloadError
from autotune.workloads import BUILTINS, check_observables, resolve_workload

HERE = Path(__file__).parent / "workloads"


def test_builtins_resolve_with_default_and_explicit_size() -> None:
    for name, (_, default_size, _) in BUILTINS.items():
        spec = resolve_workload(name)
        assert spec.kind == "builtin" and spec.size == default_size
    assert resolve_workload("cuba", 100).size == 100


def test_signature_depends_on_name_and_size_only() -> None:
    assert resolve_workload("cuba", 100).signature == resolve_workload("cuba", 100).signature
    assert resolve_workload("cuba", 100).signature != resolve_workload("cuba", 200).signature
    assert resolve_workload("cuba").signature != resolve_workload("stdp").signature


def test_file_signature_is_a_hash_of_its_content(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text((HERE / "tiny_ok.py").read_text())
    first = resolve_workload(str(path))
    assert first.kind == "file" and first.name == "model" and first.size is None
    path.write_text(path.read_text() + "\n# changed\n")
    assert resolve_workload(str(path)).signature != first.signature


@pytest.mark.parametrize("target, message", [
    ("nope", "unknown workload 'nope'"),
    (str(HERE / "missing.py"), "does not exist"),
    (str(HERE / "no_simulate.py"), r"does not define simulate\(duration\)"),
])
def test_bad_workloads_are_refused(target: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        resolve_workload(target)


def test_syntax_error_is_reported_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def simulate(duration):\n    return {\n")
    with pytest.raises(WorkloadError, match="syntax error at line"):
        resolve_workload(str(path))


def test_size_is_refused_for_files_and_checked_for_builtins() -> None:
    with pytest.raises(WorkloadError, match="built-in workloads only"):
        resolve_workload(str(HERE / "tiny_ok.py"), 10)
    for bad in (0, -5, 10**9):
        with pytest.raises(WorkloadError, match="size must be"):
            resolve_workload("cuba", bad)


def test_observables_must_be_a_mapping_of_numbers() -> None:
    assert check_observables(None, "w") == {}
    assert check_observables({"a": 1, "b": 2.5}, "w") == {"a": 1.0, "b": 2.5}
    with pytest.raises(WorkloadError, match="must return a mapping"):
        check_observables([1, 2], "w")
    with pytest.raises(WorkloadError, match="is not a number"):
        check_observables({"a": "x"}, "w")
