"""What besides its text and arguments decides which model a script builds.

A sweep does not always pass its parameters as arguments: ``N=4000 brian2-autotune run
model.py``, a SLURM array job's ``SLURM_ARRAY_TASK_ID``, or a ``params.json`` rewritten between
runs change the network while the script's text and arguments stay the same. The dry pass's
features are cached per text and arguments (:mod:`autotune.drypass`), so without this a second
size was predicted with the first one's features.

:func:`input_key` turns what the script reads by a literal name (found statically by
:mod:`autotune.scriptcheck`: ``os.environ["N"]``, ``os.getenv("SEED")``, ``np.load("w.npy")``,
``open(PARAMS)``) into entries that extend the argument list under which a dry pass is cached:
each variable's value, and each existing file's size and modification time (a stat, not a read:
``apply`` stays fast with large data files). An input that varies like a seed is then treated
as a seed: dry passes that gave alike models vouch for its next value, as for arguments.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

#: Files named in the script that are stat'ed for the key, at most (a script that names many
#: is keyed by the first ones, sorted by name).
MAX_DATA_FILES = 32


def input_key(environment: Sequence[str], data_files: Sequence[str],
              script: Path | None = None, cwd: Path | None = None) -> list[str]:
    """Entries for the dry pass's cache key: ``$NAME=value`` (``$NAME unset``) for each
    variable in ``environment``, then ``@name size mtime`` for each of ``data_files`` that is
    a file, looked up as the script would open it (from ``cwd``) or, failing that, beside
    ``script``; a name that is no file now counts as ``@name absent``."""
    entries = [f"${name}={os.environ[name]}" if name in os.environ else f"${name} unset"
               for name in sorted(environment)]
    where = cwd or Path.cwd()
    for name in sorted(data_files)[:MAX_DATA_FILES]:
        entries.append(f"@{name} {_file_state(name, where, script)}")
    return entries


def _file_state(name: str, cwd: Path, script: Path | None) -> str:
    """``size mtime_ns`` of the file the script would read as ``name``; ``absent`` if none."""
    candidates = [cwd / name] + ([script.parent / name] if script is not None else [])
    for path in candidates:
        try:
            state = path.expanduser().stat()
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(state.st_mode):
            return f"{state.st_size} {state.st_mtime_ns}"
    return "absent"
