"""What besides its arguments decides a script's model: the key its dry pass is cached under."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from autotune.scriptinputs import input_files, input_key, known_outputs, note_written


def _key(environment: list[str], data_files: list[str], args: list[str] | None = None,
         cwd: Path | None = None, script: Path | None = None,
         outputs: Path | None = None) -> list[str]:
    return input_key(environment, input_files(data_files, args or [], script, cwd, outputs))


def test_a_variables_value_and_whether_it_is_set_are_in_the_key(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("N", "500")
    monkeypatch.delenv("SEED", raising=False)
    assert _key(["SEED", "N"], [], cwd=tmp_path) == ["$N=500", "$SEED unset"]
    monkeypatch.setenv("N", "4000")
    assert _key(["N"], [], cwd=tmp_path) == ["$N=4000"]


def _rewrite(path: Path, text: str) -> None:
    """Rewrite ``path`` with a modification time surely unlike its last one, however coarse
    the file system's clock."""
    path.write_text(text)
    os.utime(path, ns=(1, 1) if path.stat().st_mtime_ns != 1 else (2, 2))


def test_a_data_file_rewritten_changes_the_key(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    assert _key([], ["params.json"], cwd=tmp_path) == ["@params.json absent"]
    params.write_text('{"N": 500}')
    first = _key([], ["params.json"], cwd=tmp_path)
    assert first != ["@params.json absent"]
    assert _key([], ["params.json"], cwd=tmp_path) == first  # unchanged: the same key
    _rewrite(params, '{"N": 4000}')
    assert _key([], ["params.json"], cwd=tmp_path) != first


def test_a_file_beside_the_script_is_found_from_another_folder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    script = tmp_path / "model" / "sweep.py"
    (tmp_path / "model" / "w.npy").write_bytes(b"12345")
    (entry,) = _key([], ["w.npy"], script=script, cwd=tmp_path)
    assert entry.startswith("@w.npy 5 ")


def test_an_argument_naming_a_file_is_keyed_by_the_file_and_a_plain_one_is_not(
        tmp_path: Path) -> None:
    """``run model.py config.yaml 3``: editing the config is a new model; the 3 is a value
    the argument list already carries."""
    config = tmp_path / "config.yaml"
    config.write_text("N: 500")
    (entry,) = _key([], [], ["config.yaml", "3", "--seed"], cwd=tmp_path)
    assert entry.startswith("@config.yaml 6 ")
    _rewrite(config, "N: 4000")
    assert _key([], [], ["config.yaml", "3"], cwd=tmp_path) != [entry]


def test_a_file_the_run_writes_is_an_output_and_leaves_the_key(tmp_path: Path) -> None:
    """``run sim.py config.yaml results.npy``: results.npy does not exist before the first
    run and is rewritten by every run; were it keyed, every run would pay a dry pass."""
    outputs = tmp_path / "cache" / "outputs.json"
    (tmp_path / "config.yaml").write_text("N: 500")
    args = ["config.yaml", "results.npy"]
    before = input_files([], args, cwd=tmp_path, outputs_file=outputs)
    first = input_key([], before)
    (tmp_path / "results.npy").write_bytes(b"spikes")  # the run writes its result
    assert note_written(before) == ["results.npy"]
    assert known_outputs(outputs) == {"results.npy"}
    after = input_files([], args, cwd=tmp_path, outputs_file=outputs)
    assert input_key([], after) == first  # the next run finds the first one's dry pass
    _rewrite(tmp_path / "results.npy", "more spikes")
    assert note_written(after) == []
    # a data file the script reads by name, yet rewrites in a way the reading missed
    (tmp_path / "log.txt").write_text("started")
    logged = input_files(["log.txt"], [], cwd=tmp_path, outputs_file=outputs)
    _rewrite(tmp_path / "log.txt", "started again")
    assert note_written(logged) == ["log.txt"]
    assert _key([], ["log.txt"], cwd=tmp_path, outputs=outputs) == []


def test_only_the_newest_outputs_are_remembered(tmp_path: Path) -> None:
    """A sweep naming one output per run (``out_17.npy``) keeps the list short."""
    from autotune.scriptinputs import MAX_OUTPUTS

    outputs = tmp_path / "outputs.json"
    for number in range(MAX_OUTPUTS + 3):
        name = f"out_{number}.npy"
        before = input_files([], [name], cwd=tmp_path, outputs_file=outputs)
        (tmp_path / name).write_bytes(b"x")
        assert note_written(before) == [name]
    remembered = known_outputs(outputs)
    assert len(remembered) == MAX_OUTPUTS
    assert "out_0.npy" not in remembered and f"out_{MAX_OUTPUTS + 2}.npy" in remembered


def _write_and_note(folder: str, name: str, outputs: str, together: Any) -> None:
    """One run of a sweep: key, write its own output, then remember it with the others."""
    before = input_files([], [name], cwd=Path(folder), outputs_file=Path(outputs))
    (Path(folder) / name).write_bytes(b"result")
    together.wait()
    note_written(before)


def test_runs_of_a_sweep_that_end_together_each_keep_their_outputs(tmp_path: Path) -> None:
    """Eight processes remember their outputs at once: none is lost to another's write."""
    context = multiprocessing.get_context("spawn")
    outputs = tmp_path / "cache" / "outputs.json"
    names = [f"out_{number}.npy" for number in range(8)]
    together = context.Barrier(len(names))
    runs = [context.Process(target=_write_and_note,
                            args=(str(tmp_path), name, str(outputs), together))
            for name in names]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert [run.exitcode for run in runs] == [0] * len(names)
    assert known_outputs(outputs) == set(names)
