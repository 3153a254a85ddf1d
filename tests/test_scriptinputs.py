"""What besides its arguments decides a script's model: the key its dry pass is cached under."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autotune.scriptinputs import input_key


def test_a_variables_value_and_whether_it_is_set_are_in_the_key(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("N", "500")
    monkeypatch.delenv("SEED", raising=False)
    assert input_key(["SEED", "N"], [], cwd=tmp_path) == ["$N=500", "$SEED unset"]
    monkeypatch.setenv("N", "4000")
    assert input_key(["N"], [], cwd=tmp_path) == ["$N=4000"]


def test_a_data_file_rewritten_changes_the_key(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    assert input_key([], ["params.json"], cwd=tmp_path) == ["@params.json absent"]
    params.write_text('{"N": 500}')
    first = input_key([], ["params.json"], cwd=tmp_path)
    assert first != ["@params.json absent"]
    assert input_key([], ["params.json"], cwd=tmp_path) == first  # unchanged: the same key
    params.write_text('{"N": 4000}')
    os.utime(params, ns=(1, 1))  # however coarse the file system's clock
    assert input_key([], ["params.json"], cwd=tmp_path) != first


def test_a_file_beside_the_script_is_found_from_another_folder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    script = tmp_path / "model" / "sweep.py"
    (tmp_path / "model" / "w.npy").write_bytes(b"12345")
    (entry,) = input_key([], ["w.npy"], script=script, cwd=tmp_path)
    assert entry.startswith("@w.npy 5 ")
