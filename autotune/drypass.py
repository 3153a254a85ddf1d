"""The dry pass: a model's features (:mod:`autotune.features`) before its first run.

A script never run here has no times of its own. To predict its cost from the host's suite
calibration (:mod:`autotune.transfer`) its size must be known first: the dry pass runs the script
in a child process under the runtime device with numpy until its first ``run()``, counts the
network there and stops before one step is simulated (:mod:`autotune._dry_child`). It costs an
interpreter, Brian2's import and the script's own set-up (seconds), so it is paid once per script
text and arguments: the features are cached under the cache root, written atomically, and the
runs of a parallel sweep started together take turns (a lock beside the cache file), so that one
of them does the dry pass and the others read its result.

A sweep runs one text with many argument lists, most of which change no size (a seed, a rate):
a dry pass for each doubled a 1-s STDP run of Brian2's examples (4 s before a 5 s run). Where
two or more argument lists of the text gave the same features and run length and differed
only in positions where the new list differs from them too (:func:`alike_features`), those
features are taken without a dry pass; a list that changes any other position is counted
afresh. The run length is what the first ``run()`` asked for (:func:`first_run_length`): a
script's length where its text does not fix it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from autotune._dry_child import FIRST_RUN
from autotune.buildslots import FileLock, wait_lock
from autotune.errors import ProfileError, WorkloadError
from autotune.features import COUNTING, ModelFeatures
from autotune.paths import ModuleToRun, module_document, write_json_atomically
from autotune.values import is_positive_number

logger = logging.getLogger(__name__)

#: Seconds a dry pass may take before it is given up (a script doing heavy work before run()).
DRY_TIMEOUT = 300.0
#: Exit status of the child when the script ended without a run() (see _dry_child).
_NO_RUN_EXIT = 3


def model_cache_dir(cache_root: Path) -> Path:
    """Where what is known of scripts' models before they run is cached: their features, and
    their predictions from the suite (:func:`autotune.transfer.predicted_profile`)."""
    return cache_root / "models"


#: Argument lists of one script text, alike in features, that show which positions change no
#: size (:func:`alike_features`).
ALIKE_ARGUMENT_LISTS = 2


def _short_hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:24]


def text_cache_dir(cache_root: Path, digest: str) -> Path:
    """Where the features of a script's text ``digest`` are cached, one file per argument list
    (features counted another way, :data:`~autotune.features.COUNTING`, are not found there)."""
    return model_cache_dir(cache_root) / f"text-{_short_hash(digest)}-{COUNTING}"


def cache_file(cache_root: Path, digest: str, args: Sequence[str]) -> Path:
    """Where the features of a script's text ``digest`` run with ``args`` are cached."""
    return text_cache_dir(cache_root, digest) / f"{_short_hash(list(args))}.json"


class _Entry(NamedTuple):
    """A cache file: the arguments, the features and the first ``run()``'s simulated seconds
    (None: a duration that was not a time, or a dry pass of an older version)."""

    arguments: list[str]
    features: ModelFeatures
    first_run: float | None


def _read_entry(path: Path) -> _Entry | None:
    """A cache file's entry (None: missing or unreadable)."""
    try:
        document = json.loads(path.read_text())
        arguments = document["arguments"]
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            raise ValueError("its arguments are not a list of strings")
        return _Entry(arguments, ModelFeatures.from_dict(document["features"]),
                      _seconds_or_none(document.get(FIRST_RUN)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, ProfileError) as e:
        logger.debug("ignoring the unreadable model cache %s: %s", path, e)
        return None


@dataclass(frozen=True)
class CythonCacheFound:
    """What Brian2's Cython cache holds of a script's code (compiled by a plain ``python`` run
    of the script, before or after its dry pass listed the modules:
    :func:`autotune._dry_child.cython_cache_state`).

    Attributes:
        name: the interpreter name under which it held the most of the script's modules (this
            interpreter's own name on a tie): Brian2 keys each module by ``sys.executable``.
        found: how many of them it held under that name.
        modules: how many the script's first run needs.
    """

    name: str
    found: int
    modules: int

    @property
    def complete(self) -> bool:
        """Whether every module is there: nothing to compile."""
        return self.found == self.modules


def cython_cache_found(cache_root: Path, digest: str, args: Sequence[str]
                       ) -> CythonCacheFound | None:
    """What Brian2's Cython cache holds of this script's code (None where it holds none, or
    the dry pass could not list the modules).

    Arguments whose features were taken from alike ones without a dry pass
    (:func:`known_features`) take what those found: a sweep's Cython code does not change with
    the seed or rate it sweeps."""
    state = _cython_state(cache_file(cache_root, digest, args))
    if isinstance(state, dict):  # its own dry pass looked: believed, found or not
        return _found(state)
    alike = [f for other in text_cache_dir(cache_root, digest).glob("*.json")
             if (f := _found_in(other)) is not None]
    return max(alike, key=lambda f: f.found / f.modules, default=None)


def _cython_state(path: Path) -> Any:
    try:
        return json.loads(path.read_text()).get("cython_cache")
    except (OSError, ValueError, AttributeError):
        return None


def _found_in(path: Path) -> CythonCacheFound | None:
    return _found(_cython_state(path))


def _found(state: Any) -> CythonCacheFound | None:
    """A look-up's document (:func:`autotune._dry_child.cython_cache_state`) read, its module
    files looked for again: a plain run since the dry pass may have compiled them."""
    try:
        modules = int(state["modules"])
        counts = {name: min(count, modules) for name, count in _counts(state).items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if modules <= 0 or not counts or max(counts.values()) <= 0:
        return None
    best = max(counts.values())
    name = sys.executable if counts.get(sys.executable) == best else next(
        n for n, count in counts.items() if count == best)
    return CythonCacheFound(name, best, modules)


def _counts(state: dict[str, Any]) -> dict[str, int]:
    """How many of the script's modules Brian2's cache holds now, per interpreter name: its
    listed files looked for, or the counts of a document that lists none (written before the
    files were kept)."""
    files = state.get("files")
    if isinstance(files, dict):
        return {str(name): sum(isinstance(path, str) and os.path.isfile(path) for path in paths)
                for name, paths in files.items()}
    return {str(name): int(count) for name, count in state["cached"].items()}


def cached_features(cache_root: Path, digest: str, args: Sequence[str]) -> ModelFeatures | None:
    """The cached features of this script text and arguments (None: no usable cache)."""
    entry = _read_entry(cache_file(cache_root, digest, args))
    return None if entry is None else entry.features


def first_run_length(cache_root: Path, digest: str, args: Sequence[str]) -> float | None:
    """The simulated seconds that the first ``run()`` of this script text and arguments asked
    for in its dry pass, or in the dry passes of the other argument lists that vouch for
    these (:func:`alike_features`: they saw the same length). None: no such dry pass, one of
    an older version, or a duration that was not a time."""
    entry = _read_entry(cache_file(cache_root, digest, args))
    if entry is None:
        alike = _alike_anchor(cache_root, digest, args)
        entry = None if alike is None else alike[0]
    return None if entry is None else entry.first_run


def _seconds_or_none(value: Any) -> float | None:
    return float(value) if is_positive_number(value) else None


#: How far apart the synapse counts of alike argument lists may be: random connectivity
#: (``connect(p=0.1)``) draws a few per cent more or fewer synapses with each seed of a
#: small network, which moves no prediction, while every other count must be equal.
SYNAPSE_SPREAD = 0.05


def synapses_alike(x: int, y: int) -> bool:
    """Whether two synapse counts can come from one model's random connectivity with two
    seeds: :data:`SYNAPSE_SPREAD` apart, or four standard deviations of a binomial draw of
    that many, whichever is wider (20 neurons connected with ``p=0.5`` draw 200 ± 10)."""
    larger = max(x, y)
    return abs(x - y) <= max(SYNAPSE_SPREAD * larger, 4.0 * math.sqrt(larger))


def _alike(a: ModelFeatures, b: ModelFeatures) -> bool:
    """Whether two dry passes counted the same model, up to a seed's random connectivity."""
    near = synapses_alike
    not_equal_alone = {"synapses", "plastic_synapses", "seconds"}
    first, second = a.to_dict(), b.to_dict()
    return (all(first.get(k) == second.get(k) for k in first.keys() | second.keys()
                if k not in not_equal_alone)
            and near(a.synapses, b.synapses) and near(a.plastic_synapses, b.plastic_synapses))


def alike_features(cache_root: Path, digest: str, args: Sequence[str]
                   ) -> tuple[ModelFeatures, int] | None:
    """Features for ``args`` from the text's dry passes with other argument lists, with how
    many lists vouch for them: at least :data:`ALIKE_ARGUMENT_LISTS` lists of the same length
    that gave alike counts (:func:`_alike`) and saw their first ``run()`` ask for the same
    simulated time, where ``args`` differs from them only in positions that already differ
    among them (seeds 1 and 2 vouch for seed 3; sizes 100 and 200 do not vouch for size 300:
    they gave different counts; nor do lengths 1 s and 2 s for another length, the choice's
    other input). None: a dry pass must tell."""
    alike = _alike_anchor(cache_root, digest, args)
    return None if alike is None else (alike[0].features, alike[1])


def _alike_anchor(cache_root: Path, digest: str, args: Sequence[str]
                  ) -> tuple[_Entry, int] | None:
    """The entry that vouches for ``args`` and how many lists vouch (see
    :func:`alike_features`)."""
    folder = text_cache_dir(cache_root, digest)
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return None
    entries = [entry for entry in map(_read_entry, paths)
               if entry is not None and len(entry.arguments) == len(args)]
    for anchor in entries:
        group = [entry.arguments for entry in entries if entry.first_run == anchor.first_run
                 and _alike(anchor.features, entry.features)]
        if len(group) < ALIKE_ARGUMENT_LISTS:
            continue
        varied = {i for arguments in group for i, a in enumerate(arguments)
                  if a != anchor.arguments[i]}
        if all(i in varied for i, a in enumerate(args) if a != anchor.arguments[i]):
            return anchor, len(group)
    return None


def known_features(cache_root: Path, digest: str, args: Sequence[str]) -> ModelFeatures | None:
    """The features of this text and arguments without a dry pass: cached for them, or alike
    across the text's other argument lists (:func:`alike_features`; logged)."""
    cached = cached_features(cache_root, digest, args)
    if cached is not None:
        return cached
    alike = alike_features(cache_root, digest, args)
    if alike is None:
        return None
    features, lists = alike
    logger.info("features of this script: %s, as its dry passes with %d other argument lists "
                "gave alike, which differed where these arguments do; no dry pass for them",
                features.describe(), lists)
    return features


def script_features(script: str | Path, args: Sequence[str], digest: str, cache_root: Path,
                    timeout: float = DRY_TIMEOUT, key: Sequence[str] | None = None,
                    module: ModuleToRun | None = None) -> ModelFeatures | None:
    """The script's features: cached, or from a dry pass now (then cached).

    ``key``: what the features are cached under, where more than ``args`` decides the model
    (``args`` followed by :func:`autotune.scriptinputs.input_key`'s entries). None, with the
    reason logged, where the dry pass cannot tell: the script fails or ends before its first
    ``run()``, or takes longer than ``timeout``. ``module``: the name and folder of the module
    that ``script`` is, where it was run as ``python -m NAME``
    (:func:`autotune.paths.main_module`): it is run that way again.
    """
    key = list(args) if key is None else list(key)
    cached = known_features(cache_root, digest, key)
    if cached is not None:
        return cached
    path = cache_file(cache_root, digest, key)
    waited_since = time.time()
    turn = _one_dry_pass_at_a_time(path, timeout)
    try:
        cached = known_features(cache_root, digest, key)  # made by the run we waited for
        if cached is not None:
            return cached
        failed = _failure_since(path, waited_since)
        if failed is not None:  # the run we waited for tried this very text and failed
            logger.info("dry pass of %s: %s; predicting without its size", script, failed)
            return None
        if _kept_no_run(path):
            logger.info("no dry pass of %s: with these arguments and inputs it finished "
                        "without calling run() before; predicting without its size", script)
            return None
        started = time.perf_counter()
        document, error = _dry_run([*_what_to_run(script, module), "--", *args], timeout)
        if document is None:
            logger.info("dry pass of %s: %s; predicting without its size", script, error)
            _note_failure(path, error)
            if error == NO_RUN_REASON:
                _note_no_run(path)
            return None
        cython_cache = document.pop("cython_cache", None)
        first_run = document.pop(FIRST_RUN, None)
        features = ModelFeatures.from_dict({**document,
                                            "seconds": time.perf_counter() - started})
        write_json_atomically(path, {"arguments": key, "features": features.to_dict(),
                                     "cython_cache": cython_cache, FIRST_RUN: first_run})
        logger.info("dry pass of %s: %s, in %.1f s (cached for this text and arguments)%s",
                    script, features.describe(), features.seconds, _cache_note(cython_cache))
        return features
    finally:
        if turn is not None:
            turn.release()


def _what_to_run(script: str | Path, module: ModuleToRun | None) -> list[str]:
    """The dry child's arguments naming what it runs: the script, or the module it is."""
    path = str(Path(script).resolve())
    if module is None:
        return ["script", path]
    return ["module", json.dumps({"path": path, "module": module_document(module)})]


def _cache_note(state: object) -> str:
    """What the dry pass found in Brian2's Cython cache, for the log."""
    if not isinstance(state, dict) or "seconds" not in state:
        return ""
    if "error" in state:
        return f"; Brian2's Cython cache not looked up: {state['error']}"
    found = _found(state)
    return (f"; Brian2's Cython cache holds {found.found if found else 0} of its "
            f"{state.get('modules', 0)} Cython modules (looked up in {state['seconds']:.1f} s)")


def _failure_file(path: Path) -> Path:
    return path.with_suffix(".failed")


#: Why a dry pass gave no features where the script ended without reaching a ``run()``.
NO_RUN_REASON = "it finished without calling run()"


def _no_run_file(path: Path) -> Path:
    """Where a dry pass that ended without a ``run()`` is kept: a script with modes (``python
    sim.py --plot`` reads saved results and exits) paid a dry pass of seconds on every such
    call, each ending the same way. A failure is not kept (the script may need a file made
    since); this end is, until a run with the same text, arguments and inputs does call
    ``run()`` (:func:`forget_no_run_once_run`)."""
    return path.with_suffix(".norun")


def _kept_no_run(path: Path) -> bool:
    try:
        return _no_run_file(path).exists()
    except OSError:  # an unreadable cache is no reason to skip the dry pass
        return False


def _note_no_run(path: Path) -> None:
    try:
        _no_run_file(path).touch()
    except OSError as e:
        logger.debug("cannot keep the dry pass's end in %s: %s", path.parent, e)


def forget_no_run_once_run(cache_root: Path, digest: str, key: Sequence[str]) -> None:
    """At the end of a run whose dry pass was skipped because an earlier one ended without a
    ``run()``: where this run did simulate (what decides it was outside the text, arguments
    and inputs the key holds), forget that end, so that the next run makes its dry pass."""
    from autotune.runrecord import simulated_seconds

    marker = _no_run_file(cache_file(cache_root, digest, key))
    try:
        if marker.exists() and simulated_seconds():
            marker.unlink(missing_ok=True)
            logger.debug("the run simulated after all: its next run makes its dry pass")
    except OSError as e:  # at exit: never a traceback over the user's run
        logger.debug("cannot forget the kept end of the dry pass in %s: %s", marker.parent, e)


def _note_failure(path: Path, error: str) -> None:
    """Tell the runs waiting for this dry pass that it failed, and why."""
    try:
        _failure_file(path).write_text(error)
    except OSError as e:
        logger.debug("cannot note the failed dry pass in %s: %s", path.parent, e)


def _failure_since(path: Path, since: float) -> str | None:
    """Why the dry pass failed, if it failed after ``since`` (a failure before then, of a
    script that may have needed a file since made, is tried again)."""
    marker = _failure_file(path)
    try:
        return marker.read_text() if marker.stat().st_mtime >= since else None
    except OSError:
        return None


def _one_dry_pass_at_a_time(path: Path, timeout: float) -> FileLock | None:
    """The lock that lets one run of a sweep started all at once do the dry pass while the
    others wait for its cache (None: no lock to be had; this run does its own)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        logger.debug("cannot make %s: %s", path.parent, e)
        return None
    # the holder's dry pass ends within its own timeout; a little more covers its start-up
    return wait_lock(path.with_suffix(".lock"), timeout + 30.0)


def workload_features(workload: dict[str, object], timeout: float = DRY_TIMEOUT
                      ) -> ModelFeatures:
    """A calibration workload's features (its ``simulate`` up to its ``run()``).

    Raises:
        WorkloadError: the workload fails before its run, or never runs.
    """
    started = time.perf_counter()
    document, error = _dry_run(["workload", json.dumps(workload)], timeout)
    if document is None:
        raise WorkloadError(f"cannot read the features of workload {workload.get('name')}: "
                            f"{error}")
    document.pop(FIRST_RUN, None)  # the calibration says how long each trial runs
    return ModelFeatures.from_dict({**document, "seconds": time.perf_counter() - started})


def _dry_run(arguments: list[str], timeout: float) -> tuple[dict[str, object] | None, str]:
    """Run the dry child; its document, or None and why.

    The child leads a process group of its own, killed once it is done: a script's worker
    processes (a ``multiprocessing.Pool``) end with it, and one of them that reached ``run()``
    first ends the dry pass by killing that group (:mod:`autotune._dry_child`). Its standard
    input is empty: a script that asks for input gets none, rather than the user's keystrokes
    meant for the run itself."""
    with tempfile.TemporaryDirectory(prefix="autotune-dry-") as folder:
        out = Path(folder) / "features.json"
        env = {**os.environ, "MPLBACKEND": "Agg"}
        command = [sys.executable, "-m", "autotune._dry_child", str(out), *arguments]
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True) as child:
            try:
                _, stderr = child.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                if out.exists():  # the features came; the Cython cache's look-up did not end
                    return json.loads(out.read_text()), ""
                return None, f"no run() within {timeout:.0f} s"
            finally:
                _kill_group(child.pid)
        if out.exists():  # written at the first run(), by the child or one of its workers
            return json.loads(out.read_text()), ""
        if child.returncode == _NO_RUN_EXIT:
            return None, NO_RUN_REASON
        last = (stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        return None, f"it failed before its first run() ({last})"


def _kill_group(leader: int) -> None:
    """Kill what is left of the process group ``leader`` leads (nothing, mostly)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, signal.SIGKILL)
