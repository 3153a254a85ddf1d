"""Apply the best stored configuration to this process's Brian2 before a run.

:func:`apply` runs before every user run, so it stays cheap: it reads the profile with the
standard library's sqlite3 (see :mod:`autotune.store.lite`) and imports neither SQLAlchemy nor
Optuna. It gathers what :func:`autotune.choice.choose` decides from, in this order:

1. explicit overrides (``device``, ``threads``, ``precision``) — source ``override``;
2. this script's own earlier runs (see :mod:`autotune.learned`), with the profile's cost
   models scaled to the script for what it has not run — source ``script``;
3. for a model never calibrated whose features are known (a dry pass, :mod:`autotune.drypass`),
   the costs predicted for it from the host's suite calibration (:mod:`autotune.transfer`) —
   source ``suite``;
4. this host's newest profile (for the workload, when given), best config for the run length —
   source ``profile``;
5. otherwise the fallback rule (cpp_standalone with the memory-aware thread count, or runtime when
   standalone cannot serve the script) — source ``fallback``, with the reason (no profile, or a
   stale one and which host component changed).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.buildahead import AheadPlan, failed_before, worth_building_ahead
from autotune.buildslots import (
    CpuSample,
    Neighbours,
    RunRegistration,
    acquire_build_slot,
    cpus_busy_elsewhere,
    node_dir,
    oversubscribed,
    register_run,
    sample_cpus,
)
from autotune.choice import choose, cost_for_run
from autotune.config import Allowed, RunConfig, brian2_default_config
from autotune.costmodel import CostModel, LoopRelation
from autotune.errors import ProfileError, StoreError
from autotune.host import HostFingerprint, changed_components, collect_host, cython_available
from autotune.paths import (
    COMPILER_CACHE,
    ModuleToRun,
    analysis_cache_dir,
    cython_cache_dir,
    default_cache_root,
    main_module,
    main_script,
    script_owner,
    standalone_build_dir,
)
from autotune.profile import Profile
from autotune.runrecord import RunRecord, random_draws_note, record_run, watch_model
from autotune.store.lite import (
    UNSUPPORTED,
    read_float32_checked,
    read_profile_document,
    read_profile_documents,
    read_script_run_counts,
    read_script_runs,
    read_stale_candidate,
)
from autotune.store.location import resolve_url, sqlite_path, unusable_sqlite_store
from autotune.values import as_seconds

if TYPE_CHECKING:  # imported only when a script is read, or has runs to learn from
    from autotune.drypass import CythonCacheFound
    from autotune.features import ModelFeatures
    from autotune.learned import OwnTimes
    from autotune.pgo import ProfileGuidedBuild
    from autotune.scriptcheck import ScriptAnalysis
    from autotune.scriptinputs import InputFiles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` set, and why.

    Attributes:
        config: the configuration now active in Brian2.
        source: ``script``, ``suite``, ``profile``, ``override`` or ``fallback``.
        reason: a sentence explaining the choice.
        predicted: predicted wall seconds for the run (when a cost model knows).
        build_dir: the cpp_standalone project folder, if standalone.
        fingerprint: this host's fingerprint.
        workload: signature of the profile's workload, if a profile was used.
        profile_created_at: when that profile was made.
        seconds: how long apply itself took.
        cost: the applied configuration's cost model, when the profile measured it.
        store_url: the store the profile came from (where the run is recorded).
        node_dir: this node's folder of build slots, run register and server-store copy.
        script_digest: the hash of the running script's text, under which the run is recorded.
        cold: the build folder (or the script's Cython code) is new: this run compiles all.
        dry_pass_seconds: how long this process spent on the script's dry pass (or waiting
            for another run's): paid once per script text, so not part of the run's own time.
        guided: the profile-guided build of a ``pgo`` configuration (its phase is known once
            Brian2 compiled), else None.
        cpu_sample: the CPUs' work when the run started, to tell at its end how many of them
            other work left it (:func:`autotune.buildslots.cpus_left_free`).
        ahead: the standalone build to make beside the run, when one was put off for its
            cold build and is worth building now (``apply(build_ahead=True)``).
        dry_size: the model's neurons and synapses by its dry pass (None without one): the
            size the run is recorded and learned under.
        input_files: the files in the key of the script's dry pass, as they were before the
            run: those it changes are its outputs (:func:`autotune.scriptinputs.note_written`).
    """

    config: RunConfig
    source: str
    reason: str
    predicted: float | None = None
    build_dir: Path | None = None
    fingerprint: str = ""
    workload: str | None = None
    profile_created_at: str | None = None
    seconds: float = 0.0
    cost: CostModel | None = field(default=None, compare=False)
    store_url: str | None = field(default=None, compare=False)
    node_dir: Path | None = field(default=None, compare=False)
    script_digest: str | None = field(default=None, compare=False)
    cold: bool | None = field(default=None, compare=False)
    guided: ProfileGuidedBuild | None = field(default=None, compare=False)
    dry_pass_seconds: float = field(default=0.0, compare=False)
    cpu_sample: CpuSample | None = field(default=None, compare=False)
    ahead: AheadPlan | None = field(default=None, compare=False)
    dry_size: tuple[int, int] | None = field(default=None, compare=False)
    input_files: InputFiles | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"config": self.config.to_dict(), "config_key": self.config.key,
                "source": self.source, "reason": self.reason, "predicted": self.predicted,
                "build_dir": str(self.build_dir) if self.build_dir else None,
                "fingerprint": self.fingerprint, "workload": self.workload,
                "profile_created_at": self.profile_created_at, "seconds": self.seconds,
                "cold": self.cold, "dry_pass_seconds": self.dry_pass_seconds,
                "built_beside": self.ahead.config.key if self.ahead else None}


#: The configuration that this process's runner applied before it ran the script, while the
#: script runs (see :func:`held_for_the_script`).
_HELD: list[Applied] = []


@contextlib.contextmanager
def held_for_the_script(applied: Applied) -> Iterator[None]:
    """While the script runs, its own ``autotune.apply()`` keeps ``applied`` (what
    ``brian2-autotune run``, a dry pass or a build beside a run applied before starting it)
    instead of choosing again: before, a script that calls ``apply()`` under ``run`` was
    chosen for twice and recorded twice, the second time with the dry pass as set-up. A call
    that asks for another device, thread count or precision applies it, and the runner
    records what is in force at the end (:func:`in_force`)."""
    _HELD[:] = [applied]
    try:
        yield
    finally:
        _HELD.clear()


def in_force(applied: Applied) -> Applied:
    """What is applied now: ``applied``, or what the script's own ``apply()`` put in its
    place while it was held (:func:`held_for_the_script`)."""
    return _HELD[0] if _HELD else applied


def _asks_for_another(config: RunConfig, device: str | None, threads: int | None,
                      precision: str | None) -> bool:
    """Whether overrides name something ``config`` is not."""
    return ((device is not None and device != config.device)
            or (threads is not None and threads != config.threads)
            or (precision is not None and precision != config.precision))


def in_a_dry_pass() -> Applied | None:
    """What ``apply()`` gives in a script's dry pass (:mod:`autotune._dry_child`) or in a
    worker of one: nothing applied, since the pass counts the model under runtime with numpy
    and stops at the first ``run()``; None outside one."""
    from autotune._dry_child import OUT_VARIABLE

    if not os.environ.get(OUT_VARIABLE):
        return None
    return Applied(RunConfig("runtime", "numpy"), "dry-pass",
                   "the script's dry pass counts its model under runtime with numpy, and "
                   "stops at its first run(): nothing applied")


def _load_profile(url: str, host: HostFingerprint, signature: str | None, node: Path
                  ) -> Profile | None:
    try:
        document = read_profile_document(url, host.fingerprint, signature)
    except sqlite3.Error as e:
        if "not a database" in str(e):
            raise unusable_sqlite_store(sqlite_path(url) or url, e) from e
        raise StoreError(f"cannot read profiles from {url}: {e}") from e
    if document is UNSUPPORTED:
        from autotune.store.nodecopy import server_document

        document = server_document(url, host.fingerprint, signature, node)
    return Profile.from_dict(document) if document else None


def _stale_reason(url: str, host: HostFingerprint) -> str | None:
    try:
        document = read_stale_candidate(url, host.fingerprint, platform.node())
    except sqlite3.Error:
        return None
    if not document or document is UNSUPPORTED:
        return None
    old = document.get("host_components", {})
    changes = [f"{key} changed ({old.get(key)!r} -> {host.components.get(key)!r})"
               for key in changed_components(old, host.components)]
    return ("the stored profile is stale: " + "; ".join(changes)) if changes else None


def apply(
    workload: str | None = None,
    duration: Any = None,
    db: str | None = None,
    *,
    device: str | None = None,
    threads: int | None = None,
    precision: str | None = None,
    use_profile: bool = True,
    standalone_ok: bool | None = None,
    cython_ok: bool = True,
    owner: str | None = None,
    cache_root: Path | None = None,
    host: HostFingerprint | None = None,
    record: bool = True,
    analysis: ScriptAnalysis | None = None,
    same_model: bool = False,
    features: ModelFeatures | None = None,
    dry_pass: tuple[Path, Sequence[str]] | None = None,
    pgo: bool | None = None,
    build_ahead: bool = False,
    module: ModuleToRun | None = None,
) -> Applied:
    """Set Brian2's device and prefs from this host's profile; return what was applied and why.

    Args:
        workload: built-in name or workload file whose profile to use (None: the host's newest).
        duration: the coming run's length: a Brian2 time (``10*second``), seconds, or a text
            such as ``"500 ms"`` (picks the best config for that length). None: what the
            running script's ``run()`` calls say, where the source alone tells (see
            :mod:`autotune.scriptcheck`); else, for a script with one ``run()`` run once,
            the duration it asked for in its dry pass with these arguments
            (``run(float(sys.argv[1])*second)``); else the median of what the script's
            recorded runs simulated; else the profile's target length.
        db: store URL (None: ``$BRIAN2_AUTOTUNE_DB`` or the default).
        device, threads, precision: overrides.
        use_profile: False ignores stored profiles (fallback rule or overrides only).
        standalone_ok: whether the coming script can run under cpp_standalone (None: as its
            ``analysis`` says; with no script file to read, in an interactive session, under
            ``python -c`` or from standard input, no, unless ``device``, ``threads`` or
            ``pgo`` asks for it).
        cython_ok: False when the script needs numpy (pure-Python functions).
        owner: names the script's build folders (None: the running script's).
        cache_root: root of build folders (None: the default cache directory).
        host: this host (None: collect it).
        record: record the run's actual times against the prediction when the process exits
            (``brian2-autotune run`` records it itself, with the script's exit status).
        analysis: what :mod:`autotune.scriptcheck` found in the coming script (None: it reads
            the running script, ``__main__``'s file): whether standalone and Cython can serve
            it, why not, and its run length when ``duration`` is None.
        same_model: the coming run simulates the profile's own workload model, whose float32
            results the calibration validated. Otherwise, unless ``brian2-autotune
            check-precision`` passed on the script's current text, a float32 winner is
            replaced by the best float64 configuration (float32 moves results by several per
            cent on some models and is slower on others); ``precision="float32"`` asks for it
            explicitly.
        features: the coming model's features (:mod:`autotune.features`; ``brian2-autotune
            run`` reads them with a dry pass). None: those cached for the running script's
            text and arguments, if any. Known, and with no ``workload`` given, the costs are
            predicted for this model from the host's suite calibration (``calibrate --suite``,
            :mod:`autotune.transfer`) where it has at least two models.
        dry_pass: the script and its arguments: where its features are not cached and the
            host has a suite, read them now with a dry pass (:mod:`autotune.drypass`: the
            script runs up to its first ``run()`` in a child process; seconds, once per text
            and arguments). ``brian2-autotune run`` gives it; None, for ``apply()`` called
            from a script whose text calls ``run()`` (the running script, read when
            ``analysis`` and ``standalone_ok`` are None): that script with this process's
            arguments.
        pgo: True asks for a profile-guided standalone build (:mod:`autotune.pgo`: the first
            run takes the profile, later ones build with it), False forbids one; None: as the
            profile decides.
        build_ahead: where a standalone configuration is put off for its cold build, plan to
            build it beside the run (:mod:`autotune.buildahead`; ``brian2-autotune run``
            starts and awaits it: :attr:`Applied.ahead`).
        module: the module the dry pass's script is, run as ``python -m`` (``run -m``;
            for the running script, read from ``__main__``): its dry pass runs it that way.

    Concurrent runs on this node never share a build folder (:mod:`autotune.buildslots`); when
    other runs are going, a configuration from the profile or the fallback rule uses at most the
    cores they leave free, and OpenMP threads that would share cores with other work sleep
    instead of spinning while they wait (see :func:`oversubscribed`).

    Raises:
        ConfigError: invalid overrides or duration.
        WorkloadError: unknown workload.
        StoreError: unreadable store.
        ProfileError: a stored profile that does not validate.
        ScriptError: the running script cannot be read or parsed.
    """
    dry = in_a_dry_pass()
    if dry is not None:
        return dry
    if _HELD and not _asks_for_another(_HELD[0].config, device, threads, precision):
        logger.debug("the script's apply() keeps %s, applied before it started",
                     _HELD[0].config.describe())
        return _HELD[0]
    import brian2  # noqa: F401 - the run needs it anyway; its __version__ spares a metadata scan

    started = time.perf_counter()
    seconds = as_seconds(duration) if duration is not None else None
    root = cache_root or default_cache_root()
    host = host or collect_host(compiler_cache=root / COMPILER_CACHE)
    script = main_script()
    why_not_standalone = ""
    if analysis is None and standalone_ok is None:
        running = module or main_module()
        analysis = _analyse(script, running, root)
        if dry_pass is None and script is not None and analysis is not None and (
                analysis.run_calls):
            dry_pass = (script, sys.argv[1:])  # apply() at the top of a script: its own
            module = running
        if analysis is None and not (device == "cpp_standalone" or threads is not None
                                     or pgo):
            standalone_ok, why_not_standalone = False, NO_SCRIPT_REASON
    if analysis is not None:
        why_not_standalone = "; ".join(analysis.reasons)
    numpy_reason = analysis.numpy_reason if analysis else None
    if standalone_ok is None:
        standalone_ok = analysis.standalone_ok if analysis else True
        cython_ok = cython_ok and (analysis.cython_ok if analysis else True)
    length_from_script = seconds is None and analysis is not None and (
        analysis.run_length is not None)
    if length_from_script:
        seconds = analysis.run_length  # type: ignore[union-attr]
    url = resolve_url(db)
    node = node_dir(root, host.fingerprint)
    profile, reason = _profile_for(url, host, workload, use_profile, node)
    digest = analysis.digest if analysis else None
    relations: dict[str, LoopRelation] = {}
    dry_seconds = 0.0
    key, input_files = _features_key(analysis, dry_pass, script, root)
    if profile is not None and workload is None and not same_model:
        suite = _suite_prediction(url, host, node, features, digest, root, dry_pass, key,
                                  module)
        dry_seconds = suite.dry_pass_seconds
        features = suite.features or features
        if suite.profile is not None:
            profile, relations = suite.profile, suite.relations
    length_from_dry_pass = None if seconds is not None else _dry_pass_length(analysis, root,
                                                                              key)
    if length_from_dry_pass is not None:
        seconds = length_from_dry_pass
    runs = _script_runs(url, host, digest, node) if digest and profile else []
    runs, other_sizes = _of_this_size(runs, features)
    history = _learn(runs)
    length_from_runs = None if seconds is not None else _run_length_of(runs)
    if length_from_runs is not None:
        seconds = length_from_runs
    registration = _register(node)
    neighbours = registration.neighbours if registration else Neighbours(0, 0)
    thread_cap = max(1, host.usable_cpus - neighbours.cores) if neighbours.runs else None
    owner = owner or (script_owner(script) if script else "interactive")
    cython_found = _cython_cache_found(root, digest, key)
    if profile is not None and cython_found is not None and not cython_found.complete:
        profile = _with_cython_partly_built(profile, cython_found)
    cold = _cold_builds(profile, history, root, host, owner,
                        cython_found is not None and cython_found.complete) | _retrained(runs)
    repeats = _expected_repeats(url, host, digest, node) if digest and cold else 1
    allowed = Allowed(
        standalone=standalone_ok, cython=cython_ok, numpy=numpy_reason is None,
        float32=same_model or (digest is not None and _float32_checked(url, digest, node)),
        max_threads=thread_cap)
    config, source, why, predicted = choose(
        host, profile, duration=seconds, device=device, threads=threads, precision=precision,
        allowed=allowed, no_profile_reason=reason, why_not_standalone=why_not_standalone,
        history=history, cold=cold, relations=relations, pgo=pgo, repeats=repeats)
    if length_from_script:
        why += " (run length read from the script)"
    elif length_from_dry_pass is not None:
        why += (f" (run length {length_from_dry_pass:.3g} s: what the script's run() asked for "
                "in its dry pass with these arguments)")
    elif length_from_runs is not None:
        why += (f" (run length {length_from_runs:.3g} s: what the script's recorded runs "
                "simulated, median)")
    if why_not_standalone and config.device == "runtime" and device is None:
        why += f"; cpp_standalone cannot serve this script: {why_not_standalone}"
    if numpy_reason is not None:
        why += f"; numpy cannot serve this script: {numpy_reason}"
    plain = brian2_default_config(cython_available(host)).key if digest else None
    why += random_draws_note(runs, config.key, plain) + _crowded_note(runs)
    if other_sizes:
        why += (f"; {other_sizes} run(s) of this script built a model of another size and teach "
                "nothing of this one")
    if neighbours.runs:
        why += (f"; {neighbours.runs} other run(s) on this node use {neighbours.cores} of "
                f"{host.usable_cpus} CPUs")
    if registration is not None:
        registration.update(max(1, config.threads))
    ahead = None
    if build_ahead and config.key not in cold and profile is not None and not (
            device or threads is not None or precision or pgo):
        ahead = _ahead_plan(host, profile, seconds, allowed, reason, history, relations, cold,
                            config, predicted, root, owner, neighbours, digest, repeats)
    if ahead is not None:
        why += (f"; {ahead.config.key} is built beside this run, at the lowest priority on a "
                "free CPU, so that the next run finds it built")
    build_dir = None
    is_cold = config.key in cold if config.target == "cython" else False
    if config.device == "cpp_standalone":
        build_dir = acquire_build_slot(standalone_build_dir(root, host.fingerprint, owner, config),
                                       hold_until_exit=True).path
        is_cold = not (build_dir / "main").exists()
        if is_cold and config.key not in cold and predicted is not None:  # a new slot: busy
            predicted += getattr(cost_for_run(profile, history, config, relations),
                                 "cold_extra", 0.0)
        if config.pgo:
            why += "; " + _profile_guided_note(build_dir)
    busy = cpus_busy_elsewhere() if config.threads > 1 else 0
    passive = oversubscribed(config.threads, host.usable_cpus, neighbours.cores, busy)
    if passive:
        why += (f"; its {config.threads} OpenMP threads sleep while they wait, since other "
                f"work keeps {max(busy, neighbours.cores)} of {host.usable_cpus} CPUs busy")
    interpreter = _cython_cache_interpreter(cython_found, config)
    why += _cython_cache_note(cython_found, config, config.key in cold, interpreter)
    if interpreter is not None:
        sys.executable = interpreter
    from autotune.brianprefs import configure_brian2

    watch_model()  # before configure_brian2, so the device methods PGO wraps keep their timing
    guided = configure_brian2(config, build_dir, _cython_cache(root, host, config),
                              with_output=True, passive_wait=passive)
    if config.device == "cpp_standalone":
        from autotune.brianprefs import wait_passively_if_crowded_at_launch
        from autotune.runner import refuse_networks_standalone_drops

        refuse_networks_standalone_drops()
        if config.threads > 1 and not passive:
            wait_passively_if_crowded_at_launch(config.threads, host.usable_cpus,
                                                node / "active" if registration else None)
    applied = Applied(config, source, why, predicted, build_dir, host.fingerprint,
                      profile.workload.get("signature") if profile else None,
                      profile.created_at if profile else None,
                      time.perf_counter() - started,
                      cost=cost_for_run(profile, history, config, relations),
                      store_url=url, node_dir=node, script_digest=digest, cold=is_cold,
                      guided=guided, dry_pass_seconds=dry_seconds,
                      cpu_sample=sample_cpus(), ahead=ahead,
                      dry_size=(features.neurons, features.synapses) if features else None,
                      input_files=input_files)
    if _HELD:  # a script's own apply() under a runner, which records what is in force
        _HELD[:] = [applied]
    elif record:
        atexit.register(record_run, applied, str(script) if script else None)
        if input_files is not None:
            from autotune.scriptinputs import note_written

            atexit.register(note_written, input_files)
    logger.debug("applied %s (%s: %s) in %.1f ms", config.describe(), source, why,
                 applied.seconds * 1000)
    return applied


def _ahead_plan(host: HostFingerprint, profile: Profile, seconds: float | None,
                allowed: Allowed, no_profile_reason: str, history: dict[str, OwnTimes],
                relations: dict[str, LoopRelation], cold: frozenset[str], chosen: RunConfig,
                predicted: float | None, root: Path, owner: str, neighbours: Neighbours,
                digest: str | None, repeats: int) -> AheadPlan | None:
    """The build to make beside a run of ``chosen``: the configuration chosen had no build
    been cold, when its build is cold and worth making now (:mod:`autotune.buildahead`)."""
    warm, _, _, _ = choose(host, profile, duration=seconds, allowed=allowed,
                           no_profile_reason=no_profile_reason, history=history,
                           relations=relations, log=False)
    cost = cost_for_run(profile, history, warm, relations)
    if warm.key not in cold or cost is None:
        return None
    folder = standalone_build_dir(root, host.fingerprint, owner, warm)
    if failed_before(folder, digest):
        return None
    from autotune.learned import runs_to_come

    in_use = max(neighbours.cores, cpus_busy_elsewhere())
    if host.usable_cpus - in_use - max(1, chosen.threads) < 1:
        logger.debug("nothing is built beside this run: other work keeps %d of %d CPUs busy",
                     in_use, host.usable_cpus)
        return None
    if not worth_building_ahead(chosen, predicted, warm, cost.predict(seconds or
                                profile.target_duration), cost.cold_extra, host.usable_cpus,
                                in_use, runs_to_come(history, repeats)):
        return None
    return AheadPlan(warm, folder, cost.cold_extra, digest)


def _profile_guided_note(build_dir: Path) -> str:
    """What a profile-guided configuration's build does on this run, for the log."""
    from autotune.pgo import read_state

    if read_state(build_dir).trained:
        return ("profile-guided build: built with the profile taken on an earlier run "
                "(taken afresh if the generated code changed)")
    return ("profile-guided build: this run's binary is instrumented (slower) to take the "
            "profile; the next run rebuilds with it, and later runs reuse that build")


#: Why apply() keeps a session without a script file off cpp_standalone unless asked.
NO_SCRIPT_REASON = ("there is no script file to read (an interactive session, `python -c` or "
                    "standard input), so nothing tells that its code calls run() once and reads "
                    "no state before it, as cpp_standalone needs; "
                    "apply(device='cpp_standalone') uses it all the same")


def _analyse(script: Path | None, module: ModuleToRun | None, cache_root: Path
             ) -> ScriptAnalysis | None:
    """What the running script allows (``module``'s, where it runs as ``python -m``), as kept
    in ``cache_root`` while the script and its modules are unchanged; None in an interactive
    session."""
    if script is None or not script.is_file():
        return None
    from autotune.scriptcheck import analyse_script

    return analyse_script(script, module, analysis_cache_dir(cache_root))


def _profile_for(url: str, host: HostFingerprint, workload: str | None, use_profile: bool,
                 node: Path) -> tuple[Profile | None, str]:
    """This host's profile (for ``workload``, when given) and, without one, why not."""
    if not use_profile:
        return None, "profiles disabled (--no-profile)"
    signature = None
    if workload is not None:
        from autotune.workloads import resolve_workload

        signature = resolve_workload(workload).signature
    try:
        profile = _load_profile(url, host, signature, node)
    except ProfileError as e:
        return None, f"the stored profile is unusable ({e})"
    if profile is None:
        return None, _stale_reason(url, host) or "no profile for this host"
    return profile, ""


@dataclass(frozen=True)
class _SuitePrediction:
    """A profile predicted for the coming model from the host's suite (None: the store holds
    no suite of at least two models, or the model's features are unknown), the suite's loop
    relations between its configurations, and what the dry pass cost this process."""

    profile: Profile | None = None
    relations: dict[str, LoopRelation] = field(default_factory=dict)
    dry_pass_seconds: float = 0.0
    features: ModelFeatures | None = None


def _features_key(analysis: ScriptAnalysis | None, dry_pass: tuple[Path, Sequence[str]] | None,
                  script: Path | None, root: Path) -> tuple[list[str], InputFiles | None]:
    """What the script's features are cached under: its arguments, then the values of the
    environment variables it reads by name and the state of the files it reads by name or is
    given as arguments (:mod:`autotune.scriptinputs`); and those files, to tell after the
    run which of them it wrote."""
    args = list(dry_pass[1]) if dry_pass else sys.argv[1:]
    if analysis is None or analysis.digest is None or not (
            args or analysis.environment or analysis.data_files):
        return args, None
    from autotune.drypass import text_cache_dir
    from autotune.scriptinputs import OUTPUTS_NAME, input_files, input_key

    files = input_files(analysis.data_files, args, dry_pass[0] if dry_pass else script,
                        outputs_file=text_cache_dir(root, analysis.digest) / OUTPUTS_NAME)
    return [*args, *input_key(analysis.environment, files)], files


def _suite_prediction(url: str, host: HostFingerprint, node: Path,
                      features: ModelFeatures | None, digest: str | None, root: Path,
                      dry_pass: tuple[Path, Sequence[str]] | None, key: Sequence[str],
                      module: ModuleToRun | None = None) -> _SuitePrediction:
    """The coming model's prediction from the host's suite (see :class:`_SuitePrediction`);
    ``key``: what its features are cached under (:func:`_features_key`); ``module``: the
    module the script is, where this process runs it with ``python -m``."""
    from autotune.drypass import (
        forget_no_run_once_run,
        known_features,
        model_cache_dir,
        script_features,
    )
    from autotune.transfer import loop_relations, members_of, predicted_profile, suite_ready

    if features is None and digest is not None:  # a cache file: cheaper than the suite
        features = known_features(root, digest, key)
    can_read = dry_pass is not None and digest is not None
    if features is None and not can_read:
        return _SuitePrediction()
    members = members_of(_host_profiles(url, host, node))
    if not suite_ready(members):
        return _SuitePrediction(features=features)
    dry_seconds = 0.0
    if features is None and dry_pass is not None and digest is not None:
        started = time.perf_counter()
        features = script_features(dry_pass[0], dry_pass[1], digest, root, key=key,
                                   module=module)  # paid once, here
        dry_seconds = time.perf_counter() - started
        if features is None:
            atexit.register(forget_no_run_once_run, root, digest, list(key))
    if features is None:
        return _SuitePrediction(dry_pass_seconds=dry_seconds)
    profile = predicted_profile(members, features, model_cache_dir(root))
    if profile is None:
        return _SuitePrediction(dry_pass_seconds=dry_seconds, features=features)
    return _SuitePrediction(profile, loop_relations(members, features), dry_seconds, features)


def _host_profiles(url: str, host: HostFingerprint, node: Path) -> list[Profile]:
    """This host's stored profiles that carry their model's features, newest first
    (unreadable ones are skipped: they cannot serve a prediction)."""
    try:
        documents = read_profile_documents(url, host.fingerprint)
    except sqlite3.Error as e:
        logger.debug("cannot read this host's profiles for a suite prediction: %s", e)
        return []
    if documents is UNSUPPORTED:
        from autotune.store.nodecopy import copied_documents

        documents = copied_documents(url, node)
    profiles = []
    for document in documents:
        if not isinstance(document, dict) or "model" not in document.get("workload", {}):
            continue
        try:
            profiles.append(Profile.from_dict(document))
        except ProfileError as e:
            logger.debug("a stored profile cannot serve a suite prediction: %s", e)
    return profiles


def _dry_pass_length(analysis: ScriptAnalysis | None, root: Path, key: Sequence[str]
                     ) -> float | None:
    """The run length the script's dry pass with these arguments saw its one ``run()`` ask
    for, where its text does not fix it (``run(float(sys.argv[1])*second)``); None where the
    script may run more than once or no such dry pass was made."""
    if analysis is None or analysis.digest is None or not analysis.runs_once:
        return None
    from autotune.drypass import first_run_length

    return first_run_length(root, analysis.digest, key)


def _run_length_of(runs: list[RunRecord]) -> float | None:
    """What a script's recorded runs simulated, their median (None without any): its run
    length where neither the caller nor the script's text says it, better than the profile's
    (a script running three networks from a table of lengths, 2.9 s in all, is not a 10-s
    run). Crowded runs count: what they simulated does not depend on their CPUs."""
    lengths = [run.simulated for run in runs if run.simulated]
    return statistics.median_low(lengths) if lengths else None


def _of_this_size(runs: list[RunRecord], features: ModelFeatures | None
                  ) -> tuple[list[RunRecord], int]:
    """The script's runs of the model its features describe, and how many were of another
    size (:func:`autotune.learned.of_size`); all of them where the features are unknown."""
    if not runs or features is None:
        return runs, 0
    from autotune.learned import of_size

    return of_size(runs, features.neurons, features.synapses)


def _learn(runs: list[RunRecord]) -> dict[str, OwnTimes]:
    """What the script's runs teach (the module is imported only when there are runs)."""
    if not runs:
        return {}
    from autotune.learned import learn

    return learn(runs)


def _crowded_note(runs: list[RunRecord]) -> str:
    """A note for the reason when some of the script's runs shared their CPUs (empty when none
    did): how many teach at the pace of their own CPU time, how many teach nothing."""
    crowded = [run for run in runs if run.crowded]
    if not crowded:
        return ""
    paced = sum(1 for run in crowded if run.times_alone() is not None)
    note = (f"; {len(crowded)} of the script's {len(runs)} recorded runs shared their CPUs "
            "with other work (runs started together, as in a parallel sweep)")
    if paced == len(crowded):
        return note + " and are learned from at the pace of their own CPU time"
    if paced:
        return note + (f": {paced} kept one CPU busy and are learned from at the pace of "
                       f"their own CPU time, {len(crowded) - paced} are not learned from")
    return note + " and are not learned from"


def _cython_cache(root: Path, host: HostFingerprint, config: RunConfig) -> Path | None:
    """Where a run's Cython extensions go: Brian2's own cache (None) for the default flags,
    where plain Brian2 compiles the same code with the same flags, so that a script the user ran
    under python before finds its extensions built (under run, with a cache of our own,
    Brette_2004.py took 28 s against python's 10 s, compiling again); a folder per preset
    otherwise, since Brian2's cache key ignores compiler flags."""
    if config.flags == "default":
        return None
    return cython_cache_dir(root, host.fingerprint, config)


def _cold_builds(profile: Profile | None, history: dict[str, OwnTimes], root: Path,
                 host: HostFingerprint, owner: str, cython_cached: bool = False
                 ) -> frozenset[str]:
    """The profile's configurations whose build would be new for this script here: standalone
    ones with no built slot, Cython ones the script never ran (its code is not in the cache),
    except Brian2's default (float64, default flags) where ``cython_cached``: its dry pass found
    all its code in Brian2's cache, compiled by a plain run of the script."""
    if profile is None:
        return frozenset()
    cold = set()
    for entry in profile.valid:
        config = entry.config
        if config.device == "cpp_standalone":
            folder = standalone_build_dir(root, host.fingerprint, owner, config)
            if not any(folder.glob("slot-*/main")):
                cold.add(config.key)
        elif config.target == "cython" and config.key not in history and not (
                cython_cached and _brians_own_cython(config)):
            cold.add(config.key)
    return frozenset(cold)


def _brians_own_cython(config: RunConfig) -> bool:
    """Whether ``config`` compiles Cython code as plain Brian2 does (into its cache)."""
    return config.target == "cython" and config.flags == "default" and (
        config.precision == "float64")


def _cython_cache_found(root: Path, digest: str | None, key: Sequence[str]
                        ) -> CythonCacheFound | None:
    """What Brian2's cache holds of this script's Cython code
    (:func:`autotune.drypass.cython_cache_found`), or None."""
    if digest is None:
        return None
    from autotune.drypass import cython_cache_found

    return cython_cache_found(root, digest, key)


def _with_cython_partly_built(profile: Profile, found: CythonCacheFound) -> Profile:
    """``profile`` with Brian2's own Cython's cold build priced for the modules that Brian2's
    cache lacks, not for all: a script edited since its plain runs (one equation changed)
    compiles one or two modules, not a dozen."""
    missing = 1.0 - found.found / found.modules
    entries = tuple(
        replace(entry, cost=replace(entry.cost, cold_extra=entry.cost.cold_extra * missing))
        if entry.cost is not None and _brians_own_cython(entry.config) else entry
        for entry in profile.entries)
    return replace(profile, entries=entries)


def _cython_cache_note(found: CythonCacheFound | None, config: RunConfig, cold: bool,
                       interpreter: str | None) -> str:
    """What Brian2's Cython cache holds of the script's code, for the reason ('' when it
    changes nothing): how much of a cold build is left, and the ``interpreter`` name it runs
    as (:func:`_cython_cache_interpreter`)."""
    if found is None or not _brians_own_cython(config):
        return ""
    note = ""
    if cold:
        note = (f"; Brian2's Cython cache holds {found.found} of this script's {found.modules} "
                f"modules, so its cold build is priced for the {found.modules - found.found} "
                "missing")
    if interpreter is not None:
        held = "this script's code" if found.complete else "those"
        note += (f"; Brian2's Cython cache holds {held} from a run as {Path(interpreter).name}, "
                 f"so it runs as {Path(interpreter).name} to reuse it")
    return note


def _cython_cache_interpreter(found: CythonCacheFound | None, config: RunConfig) -> str | None:
    """The interpreter name to run Brian2's Cython under, where it is not this one: the name
    whose entries in Brian2's cache hold the script's code. Brian2 keys each module by
    ``sys.executable``, and a user's ``python script.py`` and pip's ``brian2-autotune``
    (``python3``) would otherwise compile the same code twice."""
    if found is None or not _brians_own_cython(config) or found.name == sys.executable:
        return None
    return found.name


def _retrained(runs: list[RunRecord]) -> frozenset[str]:
    """Profile-guided configurations whose profile this script took again and again: its
    generated code changes from run to run (a swept constant written into the code, say), so
    every run pays the instrumented run and the rebuild, as a cold build does."""
    phases: dict[str, list[int]] = {}
    for run in runs:
        if run.pgo_phase in ("generate", "use"):
            counts = phases.setdefault(run.config_key, [0, 0])
            counts[run.pgo_phase == "use"] += 1
    return frozenset(key for key, (taken, used) in phases.items() if taken >= 2 and taken > used)


def _float32_checked(url: str, digest: str, node: Path) -> bool:
    """Whether the newest ``check-precision`` of the script with this text passed."""
    try:
        checked = read_float32_checked(url, digest)
    except sqlite3.Error as e:
        logger.debug("cannot read precision checks from the store: %s", e)
        return False
    if checked is UNSUPPORTED:
        from autotune.store.nodecopy import server_float32_checked

        return server_float32_checked(url, digest, node)
    return bool(checked)


def _script_runs(url: str, host: HostFingerprint, digest: str, node: Path) -> list[RunRecord]:
    """This host's recorded runs of the script with this text (none where unreadable)."""
    try:
        runs = read_script_runs(url, host.fingerprint, digest)
    except sqlite3.Error as e:
        logger.debug("cannot read this script's runs from the store: %s", e)
        return []
    if runs is UNSUPPORTED:
        from autotune.store.nodecopy import server_script_runs

        return server_script_runs(url, digest, node)
    return runs  # type: ignore[no-any-return]


def _expected_repeats(url: str, host: HostFingerprint, digest: str, node: Path) -> int:
    """How many runs a script gets on this host, from its other scripts' (1 where unreadable)."""
    from autotune.learned import expected_repeats

    try:
        counts = read_script_run_counts(url, host.fingerprint, digest)
    except sqlite3.Error as e:
        logger.debug("cannot read how often scripts are run from the store: %s", e)
        return 1
    if counts is UNSUPPORTED:
        from autotune.store.nodecopy import server_script_run_counts

        counts = server_script_run_counts(url, digest, node)
    return expected_repeats(counts)


def _register(node: Path) -> RunRegistration | None:
    """Enter this run in the node's register; None (and a debug line) where that fails."""
    try:
        return register_run(node)
    except OSError as e:
        logger.debug("cannot register this run in %s: %s", node, e)
        return None
