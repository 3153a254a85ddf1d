"""What besides its text and arguments' text decides which model a script builds.

A sweep does not always pass its parameters as arguments: ``N=4000 brian2-autotune run
model.py``, a SLURM array job's ``SLURM_ARRAY_TASK_ID``, a ``params.json`` rewritten between
runs, or ``run model.py config.yaml`` with the file edited change the network while the
script's text and arguments stay the same. The dry pass's features are cached per text and
arguments (:mod:`autotune.drypass`), so without this a second size was predicted with the
first one's features.

:func:`input_key` turns these inputs into entries that extend the argument list under which a
dry pass is cached: the value of each environment variable the script reads by a literal name
(found statically by :mod:`autotune.scriptcheck`: ``os.environ["N"]``, ``os.getenv("SEED")``),
and the size and modification time of each file it reads by a literal name (``np.load(
"w.npy")``, ``open(PARAMS)``) or is given as an argument (a stat, not a read: ``apply`` stays
fast with large data files). An input that varies like a seed is then treated as a seed: dry
passes that gave alike models vouch for its next value, as for arguments.

A file the script's own run changes is an output, not an input (``run sim.py results.h5``, or
a log opened in a way the static reading missed): :func:`note_written` remembers it beside
the text's dry passes, and later keys leave it out, or every run would pay a dry pass.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autotune.paths import write_json_atomically

logger = logging.getLogger(__name__)

#: Files named in the script that are stat'ed for the key, at most (a script that names many
#: is keyed by the first ones, sorted by name).
MAX_DATA_FILES = 32
#: Where the outputs of a script text are remembered, in its folder of dry passes.
OUTPUTS_NAME = "outputs.json"
#: The newest outputs remembered, at most: a sweep that names one output file per run
#: (``out_17.npy``) would otherwise make every run read a longer list.
MAX_OUTPUTS = 256
ABSENT = "absent"
#: Seconds a run waits for another to finish remembering its outputs (then writes anyway: at
#: worst one output is forgotten, which costs a later run one dry pass).
OUTPUTS_LOCK_WAIT = 5.0


@dataclass(frozen=True)
class InputFiles:
    """The files in a script's dry-pass key, with their state when the key was made.

    Attributes:
        states: name as written (in the script or as an argument) -> ``size mtime_ns``, or
            ``absent`` for a file the script names that does not exist now.
        paths: name -> the path looked at.
        outputs_file: where the text's outputs are remembered (None: nowhere).
        unkeyed: arguments that named no file when the key was made: plain values, not in
            the key, but a file the run creates under such a name is an output.
    """

    states: dict[str, str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    outputs_file: Path | None = None
    unkeyed: frozenset[str] = frozenset()


def input_files(data_files: Sequence[str], args: Sequence[str], script: Path | None = None,
                cwd: Path | None = None, outputs_file: Path | None = None) -> InputFiles:
    """The state of the files the script reads by a literal name (``data_files``; looked up
    as the script would open them, from ``cwd``, or failing that beside ``script``) and of
    the arguments that name an existing file, less the text's known outputs."""
    where = cwd or Path.cwd()
    outputs = known_outputs(outputs_file)
    states: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for name in sorted(set(data_files) - outputs)[:MAX_DATA_FILES]:
        paths[name], states[name] = _file_state(name, where, script)
    unkeyed = set()
    for arg in args:
        if arg in states or arg in outputs:
            continue
        paths[arg], states[arg] = _file_state(arg, where, None)
        if states[arg] == ABSENT:  # a plain value, or a file the run will write
            unkeyed.add(arg)
    return InputFiles(states, paths, outputs_file, frozenset(unkeyed))


def input_key(environment: Sequence[str], files: InputFiles) -> list[str]:
    """Entries for the dry pass's cache key: ``$NAME=value`` (``$NAME unset``) for each
    variable in ``environment``, then ``@name state`` for each of ``files``."""
    entries = [f"${name}={os.environ[name]}" if name in os.environ else f"${name} unset"
               for name in sorted(environment)]
    return entries + [f"@{name} {state}" for name, state in files.states.items()
                      if name not in files.unkeyed]


def note_written(files: InputFiles | None) -> list[str]:
    """The files of the key that changed since it was made (by the script's run: outputs),
    remembered in ``files.outputs_file`` so that later keys leave them out (the newest
    :data:`MAX_OUTPUTS`). Runs of a sweep that end together take turns, under a lock beside
    the file, so that none loses another's outputs."""
    if files is None or not files.states:
        return []
    written = [name for name, path in files.paths.items()
               if _state_of(path) != files.states[name]]
    if written and files.outputs_file is not None:
        _remember(files.outputs_file, written)
    return written


def _remember(outputs_file: Path, written: list[str]) -> None:
    """Add ``written`` to the outputs remembered in ``outputs_file``, newest last."""
    from autotune.buildslots import wait_lock

    lock = None
    try:
        outputs_file.parent.mkdir(parents=True, exist_ok=True)
        lock = wait_lock(outputs_file.with_suffix(".lock"), timeout=OUTPUTS_LOCK_WAIT)
        known = [name for name in _remembered(outputs_file) if name not in written]
        write_json_atomically(outputs_file, (known + written)[-MAX_OUTPUTS:])
    except OSError as e:
        logger.debug("cannot remember the outputs %s: %s", written, e)
    else:
        logger.debug("%s changed during the run: outputs, left out of the dry pass's key",
                     ", ".join(written))
    finally:
        if lock is not None:
            lock.release()


def known_outputs(outputs_file: Path | None) -> set[str]:
    """The names remembered as the text's outputs (none where unreadable)."""
    return set(_remembered(outputs_file))


def _remembered(outputs_file: Path | None) -> list[str]:
    """The remembered outputs, oldest first."""
    if outputs_file is None:
        return []
    try:
        names = json.loads(outputs_file.read_text())
    except (OSError, ValueError):
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def _file_state(name: str, cwd: Path, script: Path | None) -> tuple[Path, str]:
    """The path the script would read as ``name`` and its ``size mtime_ns`` (``absent``
    where it is no file, at the first place looked)."""
    candidates = [cwd / name] + ([script.parent / name] if script is not None else [])
    for path in candidates:
        state = _state_of(path)
        if state != ABSENT:
            return path, state
    return candidates[0], ABSENT


def _state_of(path: Path) -> str:
    try:
        state = path.expanduser().stat()
    except (OSError, ValueError):
        return ABSENT
    return f"{state.st_size} {state.st_mtime_ns}" if stat.S_ISREG(state.st_mode) else ABSENT
