"""Profile-guided builds of a cpp_standalone project: train once, then build with the profile.

A profile-guided (PGO) configuration builds its project in two phases. The first run builds
with ``-fprofile-generate`` and its (slower, instrumented) binary writes a profile of the loop
while it computes the run's results as usual; the next run rebuilds from clean with
``-fprofile-use`` and every run after that reuses that build. The profile belongs to one build
folder (one model, script and configuration; :mod:`autotune.buildslots` keeps concurrent runs
out of each other's folders, so out of each other's profiles) and lives in its ``pgo/``
subfolder with a small state file.

The profile is valid only for the code it was taken from. Before each ``make`` the generated
sources (all but ``main.cpp``, whose only change between runs is the run length) and the
makefile are hashed: a profile of other code is thrown away and the next run trains afresh,
so regenerated code never builds against a stale profile. ``-Wno-coverage-mismatch`` is
accepted for ``main.cpp`` alone, whose literal run length changes with the duration.

The phase's flags reach the compiler through ``make``'s command line (``CXX=...``, in
:data:`brian2.prefs.devices.cpp_standalone.extra_make_args_unix`), which Brian2 reads when it
compiles, after it generated the code: the phase is decided knowing exactly what will be built.
With OpenMP the counters are updated atomically (``-fprofile-update=atomic``), so each
thread's share of the loop is counted, and ``-fprofile-correction`` smooths what is left.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.paths import replace_json

logger = logging.getLogger(__name__)

#: Subfolder of a build folder holding its profile and state.
PGO_DIR = "pgo"
_STATE = "state.json"
_PROFILES = "profiles"
#: Phases of a profile-guided build folder.
GENERATE, USE = "generate", "use"
#: Generated files whose change does not void a profile (the run length is a literal there).
_EXEMPT = {"main.cpp"}
_SOURCE_SUFFIXES = (".cpp", ".h", ".c", ".hpp")


@dataclass(frozen=True)
class PgoState:
    """What a build folder's profile is.

    Attributes:
        digest: hash of the generated code the last build compiled (see :func:`code_digest`).
        built: the phase the folder's binary was built in (``generate`` or ``use``).
        trained: True once an instrumented binary of code with ``digest`` ran to its end.
    """

    digest: str | None = None
    built: str | None = None
    trained: bool = False


def pgo_dir(build_dir: Path) -> Path:
    """The folder holding ``build_dir``'s profile and state."""
    return build_dir / PGO_DIR


def read_state(build_dir: Path) -> PgoState:
    """The folder's state; a missing or unreadable state is an untrained folder."""
    try:
        data = json.loads((pgo_dir(build_dir) / _STATE).read_text())
        return PgoState(data.get("digest"), data.get("built"), bool(data.get("trained")))
    except (OSError, ValueError, AttributeError):
        return PgoState()


def _write_state(build_dir: Path, state: PgoState) -> None:
    replace_json(pgo_dir(build_dir) / _STATE,
                 {"digest": state.digest, "built": state.built, "trained": state.trained})


def code_digest(build_dir: Path) -> str:
    """Hash of the generated sources and makefile a profile is taken from (``main.cpp`` and
    our own ``pgo/`` folder excluded)."""
    digest = hashlib.sha256()
    for path in sorted(build_dir.rglob("*")):
        relative = path.relative_to(build_dir)
        if relative.parts[0] in (PGO_DIR, "results") or not path.is_file():
            continue
        if str(relative) in _EXEMPT:
            continue
        if path.suffix in _SOURCE_SUFFIXES or path.name == "makefile":
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def next_phase(state: PgoState, digest: str, profiles_present: bool) -> str:
    """The phase of the next build: with the profile when one was trained on this code."""
    return USE if state.trained and state.digest == digest and profiles_present else GENERATE


def phase_flags(phase: str, profiles: Path, threads: int) -> list[str]:
    """Compiler (and linker) flags of ``phase``, profiles kept in ``profiles``."""
    if phase == GENERATE:
        flags = [f"-fprofile-generate={profiles}"]
        if threads > 0:
            flags.append("-fprofile-update=atomic")
        return flags
    return [f"-fprofile-use={profiles}", "-fprofile-correction", "-Wno-coverage-mismatch"]


def _profiles_present(profiles: Path) -> bool:
    return profiles.is_dir() and any(profiles.rglob("*.gcda"))


def _compiler() -> str:
    return os.environ.get("CXX") or "g++"


@dataclass
class ProfileGuidedBuild:
    """Drives one process's build in ``build_dir`` through the two phases (see module doc).

    Installed on Brian2's standalone device by :func:`install`; ``phase`` says what the run's
    build was once it compiled (None before).
    """

    build_dir: Path
    threads: int
    phase: str | None = None
    rebuilt: bool = False

    @property
    def profiles(self) -> Path:
        """Where the profile's ``.gcda`` files go."""
        return pgo_dir(self.build_dir) / _PROFILES

    def before_make(self, make_args: list[str]) -> tuple[list[str], bool]:
        """Decide this build's phase from the generated code; the ``make`` arguments to use and
        whether the build must start from clean (a phase change: every object differs)."""
        state = read_state(self.build_dir)
        digest = code_digest(self.build_dir)
        phase = next_phase(state, digest, _profiles_present(self.profiles))
        if phase == GENERATE and (state.digest != digest or not state.trained):
            shutil.rmtree(self.profiles, ignore_errors=True)
            if state.trained:
                logger.info("the generated code changed since its profile was taken: a fresh "
                            "profile is taken on this run")
        self.profiles.mkdir(parents=True, exist_ok=True)
        self.phase = phase
        self.rebuilt = state.built != phase or state.digest != digest
        _write_state(self.build_dir, PgoState(digest, phase,
                                              state.trained and phase == USE))
        compiler = " ".join([_compiler(), *phase_flags(phase, self.profiles, self.threads)])
        return [*make_args, shlex.quote(f"CXX={compiler}")], self.rebuilt

    def after_run(self) -> None:
        """The binary ran to its end: an instrumented one has left its profile."""
        if self.phase != GENERATE:
            return
        state = read_state(self.build_dir)
        if _profiles_present(self.profiles):
            _write_state(self.build_dir, PgoState(state.digest, GENERATE, True))
            logger.info("profile-guided build: profile taken; the next run builds with it")


def install(device: Any, build_dir: Path, threads: int) -> ProfileGuidedBuild:
    """Make Brian2's standalone ``device`` build in ``build_dir`` profile-guided."""
    from brian2 import prefs

    build = ProfileGuidedBuild(build_dir, threads)
    compile_source, run = device.compile_source, device.run

    def guided_compile(directory: str, compiler: str, debug: bool, clean: bool) -> Any:
        original = list(prefs.devices.cpp_standalone.extra_make_args_unix)
        arguments, rebuild = build.before_make(original)
        prefs.devices.cpp_standalone.extra_make_args_unix = arguments
        try:
            return compile_source(directory, compiler, debug, clean or rebuild)
        finally:
            prefs.devices.cpp_standalone.extra_make_args_unix = original

    def guided_run(*args: Any, **kwargs: Any) -> Any:
        result = run(*args, **kwargs)
        build.after_run()
        return result

    device.compile_source = guided_compile
    device.run = guided_run
    return build


def cache_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when it does not exist)."""
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
