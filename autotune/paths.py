"""Stable folders for compiled artefacts (cheap to import: used by ``apply`` before every run).

A cpp_standalone project gets one folder per (workload or script, configuration): changing the
thread count or flags rebuilds everything, and reusing the folder makes a repeated run's ``make``
take milliseconds. The Cython cache gets one folder per flag preset, since Brian2's cache key
ignores compiler flags.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from autotune.config import RunConfig

CACHE_ENV_VAR = "BRIAN2_AUTOTUNE_CACHE"


def default_cache_root() -> Path:
    """``$BRIAN2_AUTOTUNE_CACHE`` or the user's cache directory for brian2-autotune."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("brian2-autotune", appauthor=False))


def standalone_build_dir(cache_root: Path, fingerprint: str, owner: str, config: RunConfig
                         ) -> Path:
    """Stable cpp_standalone project folder for one workload/script and configuration."""
    return cache_root / fingerprint / owner / config.key


def cython_cache_dir(cache_root: Path, fingerprint: str, config: RunConfig) -> Path:
    """Cython cache folder per flag preset."""
    return cache_root / fingerprint / "cython" / config.flags


def script_owner(script: str | os.PathLike[str]) -> str:
    """Folder name for a user script's builds: a hash of its absolute path."""
    absolute = str(Path(script).expanduser().resolve())
    return "script-" + hashlib.sha256(absolute.encode()).hexdigest()[:12]
