"""Stable folders for compiled artefacts (cheap to import: used by ``apply`` before every run).

A cpp_standalone project gets one folder per (node, workload or script, configuration):
changing the thread count or flags rebuilds everything, and reusing the folder makes a repeated
run's ``make`` take milliseconds. Inside it, each process that builds takes a slot of its own
(:mod:`autotune.buildslots`), so concurrent runs never share one. The Cython cache gets one
folder per flag preset, since Brian2's cache key ignores compiler flags (Brian2 locks it
itself).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from autotune.buildslots import node_dir
from autotune.config import RunConfig

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "BRIAN2_AUTOTUNE_CACHE"
#: File under the cache root remembering the C++ compiler's version (see host.collect_compiler).
COMPILER_CACHE = "compiler-version.txt"


def user_folder(kind: str) -> Path:
    """The user's ``data`` or ``cache`` folder for brian2-autotune (platformdirs' answer).

    On Linux that is the XDG rule, computed here: importing platformdirs costs ``apply`` tens
    of milliseconds on a loaded host.
    """
    import sys

    if sys.platform.startswith("linux"):
        variable, fallback = {"data": ("XDG_DATA_HOME", "~/.local/share"),
                              "cache": ("XDG_CACHE_HOME", "~/.cache")}[kind]
        base = os.environ.get(variable, "").strip() or os.path.expanduser(fallback)
        return Path(base) / "brian2-autotune"
    import platformdirs

    finder = platformdirs.user_data_dir if kind == "data" else platformdirs.user_cache_dir
    return Path(finder("brian2-autotune", appauthor=False))


def default_cache_root() -> Path:
    """``$BRIAN2_AUTOTUNE_CACHE`` or the user's cache directory for brian2-autotune."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return user_folder("cache")


def standalone_build_dir(cache_root: Path, fingerprint: str, owner: str, config: RunConfig
                         ) -> Path:
    """Folder of one workload/script and configuration's cpp_standalone slots on this node."""
    return node_dir(cache_root, fingerprint) / owner / config.key


def cython_cache_dir(cache_root: Path, fingerprint: str, config: RunConfig) -> Path:
    """Cython cache folder per flag preset."""
    return cache_root / fingerprint / "cython" / config.flags


def script_owner(script: str | os.PathLike[str]) -> str:
    """Folder name for a user script's builds: its name and a hash of its absolute path."""
    absolute = Path(script).expanduser().resolve()
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in absolute.stem)[:40]
    return f"script-{stem}-" + hashlib.sha256(str(absolute).encode()).hexdigest()[:12]


def main_script() -> Path | None:
    """The script this process runs (``__main__``'s file), or None in an interactive session."""
    import sys

    main = sys.modules.get("__main__")
    filename = getattr(main, "__file__", None)
    return Path(filename) if filename else None


#: A module run as ``python -m NAME``: its name and the folder it is found in (the one above
#: its top package, put first on ``sys.path``).
ModuleToRun = tuple[str, Path]


def main_module() -> ModuleToRun | None:
    """The module this process runs as ``python -m NAME`` and the folder Python found it in
    (the one above its top package), or None where it runs a script file or interactively.

    A module run this way may import its package's modules relatively (``from . import
    model``), which fails where its file is run as a script."""
    import sys

    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    filename = getattr(main, "__file__", None)
    if not name or name == "__main__" or not filename:
        return None
    return name, _top_folder(Path(filename), name)


def _top_folder(file: Path, name: str) -> Path:
    """The folder above the top package of module ``name`` held in ``file``."""
    folder = file.resolve().parent
    for _ in range(name.count(".")):
        folder = folder.parent
    return folder


def module_document(module: ModuleToRun | None) -> list[str] | None:
    """``module`` as JSON, for a child process (:func:`module_from_document` reads it)."""
    return None if module is None else [module[0], str(module[1])]


def module_from_document(document: Any) -> ModuleToRun | None:
    """The module :func:`module_document` wrote (None where it wrote none)."""
    return None if document is None else (str(document[0]), Path(document[1]))


def script_to_run(script: str | Path | None, module: str | None
                  ) -> tuple[Path, ModuleToRun | None]:
    """The file a command runs and, for ``-m MODULE``, the module it is (:func:`find_module`).

    Raises:
        ScriptError: neither is given, or there is no such module.
    """
    if module is not None:
        return find_module(module)
    if script is None:
        from autotune.errors import ScriptError

        raise ScriptError("give a script, or a module with -m")
    return Path(script), None


def find_module(name: str) -> tuple[Path, ModuleToRun]:
    """The file that ``python -m NAME`` run in this folder would run (a package's
    ``__main__``), and the module to run. Like Python, this imports the packages above it.

    Raises:
        ScriptError: no such module here, or none that is a Python file.
    """
    import importlib.util
    import sys

    from autotune.errors import ScriptError

    folder = os.getcwd()
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            name = f"{name}.__main__"  # ``python -m PACKAGE`` runs its __main__
            spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        raise ScriptError(f"cannot find module {name!r} from {folder}: {e} (run from the "
                          "folder that holds its package, or put that on PYTHONPATH)") from None
    except Exception as e:  # a package's __init__ that fails as `python -m` would report
        raise ScriptError(f"importing the packages of module {name!r} failed: "
                          f"{type(e).__name__}: {e}") from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ScriptError(f"no Python module {name!r} to run from {folder} (run from the "
                          "folder that holds its package, or put that on PYTHONPATH)")
    return Path(spec.origin), (name, _top_folder(Path(spec.origin), name))


def replace_json(path: Path, document: Any) -> None:
    """Write ``document`` as JSON so that a reader never sees half a file: into a temporary
    file beside ``path``, then renamed over it (the folder is made where missing).

    Raises:
        OSError: it cannot be written (the temporary file is removed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp", delete=False) as handle:
        try:
            json.dump(document, handle)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
    try:
        os.replace(handle.name, path)
    except OSError:
        Path(handle.name).unlink(missing_ok=True)
        raise


def analysis_cache_dir(cache_root: Path) -> Path:
    """Where the analyses of scripts' texts are kept (:func:`autotune.scriptcheck.
    analyse_script`)."""
    return cache_root / "scripts"


def write_json_atomically(path: Path, document: Any) -> bool:
    """:func:`replace_json` for caches, which may go unwritten (the runs of a sweep race on
    the cache): False, with the reason logged, where it cannot be written."""
    try:
        replace_json(path, document)
    except OSError as e:
        logger.debug("cannot write the cache file %s: %s", path, e)
        return False
    return True
