"""Apply the best stored configuration to this process's Brian2 before a run.

:func:`apply` runs before every user run, so it stays cheap: it reads the profile with the
standard library's sqlite3 (see :mod:`autotune.store.lite`) and imports neither SQLAlchemy nor
Optuna. It decides what to use, in this order:

1. explicit overrides (``device``, ``threads``, ``precision``) — source ``override``;
2. this host's newest profile (for the workload, when given), best config for the run length —
   source ``profile``;
3. otherwise the fallback rule (cpp_standalone with the memory-aware thread count, or runtime when
   standalone cannot serve the script) — source ``fallback``, with the reason (no profile, or a
   stale one and which host component changed).
"""

from __future__ import annotations

import atexit
import logging
import platform
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.buildslots import (
    Neighbours,
    RunRegistration,
    acquire_build_slot,
    load_average,
    node_dir,
    oversubscribed,
    register_run,
)
from autotune.config import MAX_THREADS, PRECISIONS, RunConfig, standalone_config
from autotune.costmodel import CostModel
from autotune.errors import ConfigError, ProfileError, StoreError
from autotune.host import HostFingerprint, changed_components, collect_host
from autotune.paths import (
    COMPILER_CACHE,
    cython_cache_dir,
    default_cache_root,
    main_script,
    script_owner,
    standalone_build_dir,
)
from autotune.profile import Profile
from autotune.runrecord import record_run
from autotune.store.lite import UNSUPPORTED, read_profile_document, read_stale_candidate
from autotune.store.location import resolve_url
from autotune.values import as_seconds

if TYPE_CHECKING:  # the analysis itself is imported only when a script is read
    from autotune.scriptcheck import ScriptAnalysis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` set, and why.

    Attributes:
        config: the configuration now active in Brian2.
        source: ``profile``, ``override`` or ``fallback``.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"config": self.config.to_dict(), "config_key": self.config.key,
                "source": self.source, "reason": self.reason, "predicted": self.predicted,
                "build_dir": str(self.build_dir) if self.build_dir else None,
                "fingerprint": self.fingerprint, "workload": self.workload,
                "profile_created_at": self.profile_created_at, "seconds": self.seconds}


def fallback_config(host: HostFingerprint, standalone_ok: bool, cython_ok: bool = True,
                    thread_cap: int | None = None) -> RunConfig:
    """The seed's rule: cpp_standalone with the memory-aware thread count (1 thread = no OpenMP),
    at most ``thread_cap`` threads.

    Where standalone cannot serve the script: Brian2's default (runtime, Cython or numpy).
    """
    if standalone_ok:
        threads = host.max_threads if thread_cap is None else min(host.max_threads, thread_cap)
        return standalone_config(0 if threads <= 1 else threads)
    return RunConfig("runtime", "cython" if cython_ok else "numpy")


def check_overrides(host: HostFingerprint, device: str | None, threads: int | None,
                    precision: str | None) -> None:
    """Validate user overrides against this host.

    Raises:
        ConfigError: unknown device/precision, or threads outside 0..usable CPUs.
    """
    if device is not None and device not in ("runtime", "cpp_standalone"):
        raise ConfigError(f"unknown device {device!r}; use runtime or cpp_standalone")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use float64 or float32")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"--num-threads must be an integer >= 0, got {threads!r}")
        if threads > min(host.usable_cpus, MAX_THREADS):
            raise ConfigError(f"--num-threads {threads} exceeds the {host.usable_cpus} usable "
                              "CPUs of this host")
        if device == "runtime" and threads > 0:
            raise ConfigError("--num-threads applies to cpp_standalone; drop it or use "
                              "--device cpp_standalone")


def _load_profile(url: str, host: HostFingerprint, signature: str | None, node: Path
                  ) -> Profile | None:
    try:
        document = read_profile_document(url, host.fingerprint, signature)
    except sqlite3.Error as e:
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


def choose(
    host: HostFingerprint,
    profile: Profile | None,
    *,
    duration: float | None = None,
    device: str | None = None,
    threads: int | None = None,
    precision: str | None = None,
    standalone_ok: bool = True,
    cython_ok: bool = True,
    no_profile_reason: str = "no profile for this host",
    thread_cap: int | None = None,
    why_not_standalone: str = "",
    float32_ok: bool = True,
) -> tuple[RunConfig, str, str, float | None]:
    """Decide the configuration (pure: sets nothing). Returns (config, source, reason, predicted).

    ``thread_cap`` (cores left free by other runs on this node) bounds the OpenMP threads of a
    configuration chosen from the profile or the fallback rule; an explicit ``threads`` wins.
    Without ``float32_ok`` (the coming model is not the one whose float32 results the profile
    validated) only float64 configurations are chosen from the profile; an explicit
    ``precision`` wins.

    Raises:
        ConfigError: on invalid overrides, or an override that implies cpp_standalone (a device,
            or any thread count, 0 included) where the script cannot run under it.
    """
    check_overrides(host, device, threads, precision)
    if not standalone_ok and (device == "cpp_standalone" or threads is not None):
        what = "--device cpp_standalone" if device == "cpp_standalone" else "--num-threads"
        raise ConfigError(f"{what} needs cpp_standalone, which cannot run this script"
                          + (f" ({why_not_standalone})" if why_not_standalone else "")
                          + "; drop it or use --device runtime")
    best = (profile.best(duration, standalone_ok=standalone_ok, cython_ok=cython_ok,
                         max_threads=thread_cap) if profile else None)
    only_float64 = (not float32_ok and precision is None and best is not None
                    and best.config.precision == "float32")
    if only_float64:
        best = profile.best(duration, standalone_ok=standalone_ok,  # type: ignore[union-attr]
                            cython_ok=cython_ok, max_threads=thread_cap, float32_ok=False)
    if best is not None:
        config, source = best.config, "profile"
        when = f"{duration:g} s" if duration else f"{profile.target_duration:g} s"  # type: ignore[union-attr]
        reason = f"fastest valid configuration in this host's profile for {when} runs"
        if not standalone_ok:
            reason += " that runtime can serve" if cython_ok else " that numpy can serve"
        if only_float64:
            reason += (f"; float64, since float32 was validated on "
                       f"{profile.workload.get('name')}, not on this script "  # type: ignore[union-attr]
                       "(ask for it with --precision float32)")
    else:
        config, source = fallback_config(host, standalone_ok, cython_ok, thread_cap), "fallback"
        reason = f"{no_profile_reason}; using the fallback rule"
    if device or threads is not None or precision:
        config = _override(config, host, device, threads, precision, profile, duration,
                           thread_cap)
        source, reason = "override", "set on the command line"
    predicted = None
    if profile is not None:
        entry = profile.entry(config)
        if entry is not None and entry.cost is not None:
            predicted = entry.cost.predict(duration or profile.target_duration)
    return config, source, reason, predicted


def _override(config: RunConfig, host: HostFingerprint, device: str | None,
              threads: int | None, precision: str | None, profile: Profile | None,
              duration: float | None, thread_cap: int | None) -> RunConfig:
    if threads is not None and device is None:
        device = "cpp_standalone"
    device = device or config.device
    precision = precision or config.precision
    if device == "cpp_standalone":
        if threads is None:
            threads = config.threads if config.device == "cpp_standalone" else (
                _best_threads(profile, duration, thread_cap) if profile else fallback_config(
                    host, True, thread_cap=thread_cap).threads)
        flags = config.flags if config.device == "cpp_standalone" else "default"
        return standalone_config(threads, precision, flags)
    if config.device == "runtime":
        return RunConfig("runtime", config.target, 0, precision, config.flags)
    return RunConfig("runtime", "cython", 0, precision)


def _best_threads(profile: Profile, duration: float | None, thread_cap: int | None = None
                  ) -> int:
    for entry in profile.ranked(duration):
        if entry.config.device == "cpp_standalone" and (thread_cap is None
                                                         or entry.config.threads <= thread_cap):
            return entry.config.threads
    return 0


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
) -> Applied:
    """Set Brian2's device and prefs from this host's profile; return what was applied and why.

    Args:
        workload: built-in name or workload file whose profile to use (None: the host's newest).
        duration: the coming run's length: a Brian2 time (``10*second``), seconds, or a text
            such as ``"500 ms"`` (picks the best config for that length). None: what the
            running script's ``run()`` calls say, where the source alone tells (see
            :mod:`autotune.scriptcheck`), else the profile's target length.
        db: store URL (None: ``$BRIAN2_AUTOTUNE_DB`` or the default).
        device, threads, precision: overrides.
        use_profile: False ignores stored profiles (fallback rule or overrides only).
        standalone_ok: whether the coming script can run under cpp_standalone (None: as its
            ``analysis`` says).
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
            results the calibration validated. Otherwise a float32 winner is replaced by the
            best float64 configuration (float32 moves results by several per cent on some
            models and is slower on others); ``precision="float32"`` asks for it explicitly.

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
    import brian2  # noqa: F401 - the run needs it anyway; its __version__ spares a metadata scan

    started = time.perf_counter()
    seconds = as_seconds(duration) if duration is not None else None
    root = cache_root or default_cache_root()
    host = host or collect_host(compiler_cache=root / COMPILER_CACHE)
    script = main_script()
    if analysis is None and standalone_ok is None:
        analysis = _analyse(script)
    why_not_standalone = "; ".join(analysis.reasons) if analysis else ""
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
    registration = _register(node)
    neighbours = registration.neighbours if registration else Neighbours(0, 0)
    thread_cap = max(1, host.usable_cpus - neighbours.cores) if neighbours.runs else None
    config, source, why, predicted = choose(
        host, profile, duration=seconds, device=device, threads=threads, precision=precision,
        standalone_ok=standalone_ok, cython_ok=cython_ok, no_profile_reason=reason,
        thread_cap=thread_cap, why_not_standalone=why_not_standalone, float32_ok=same_model)
    if length_from_script:
        why += " (run length read from the script)"
    if why_not_standalone and config.device == "runtime" and device is None:
        why += f"; cpp_standalone cannot serve this script: {why_not_standalone}"
    if neighbours.runs:
        why += (f"; {neighbours.runs} other run(s) on this node use {neighbours.cores} of "
                f"{host.usable_cpus} CPUs")
    if registration is not None:
        registration.update(max(1, config.threads))
    build_dir = None
    if config.device == "cpp_standalone":
        owner = owner or (script_owner(script) if script else "interactive")
        build_dir = acquire_build_slot(standalone_build_dir(root, host.fingerprint, owner, config),
                                       hold_until_exit=True).path
    from autotune.brianprefs import configure_brian2

    configure_brian2(config, build_dir, cython_cache_dir(root, host.fingerprint, config),
                     with_output=True,
                     passive_wait=oversubscribed(config.threads, host.usable_cpus,
                                                 neighbours.cores, load_average()))
    entry = profile.entry(config) if profile else None
    applied = Applied(config, source, why, predicted, build_dir, host.fingerprint,
                      profile.workload.get("signature") if profile else None,
                      profile.created_at if profile else None,
                      time.perf_counter() - started, cost=entry.cost if entry else None,
                      store_url=url, node_dir=node)
    if record:
        atexit.register(record_run, applied, str(script) if script else None)
    logger.debug("applied %s (%s: %s) in %.1f ms", config.describe(), source, why,
                 applied.seconds * 1000)
    return applied


def _analyse(script: Path | None) -> ScriptAnalysis | None:
    """What the running script allows; None in an interactive session."""
    if script is None or not script.is_file():
        return None
    from autotune.scriptcheck import analyse_script

    return analyse_script(script)


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


def _register(node: Path) -> RunRegistration | None:
    """Enter this run in the node's register; None (and a debug line) where that fails."""
    try:
        return register_run(node)
    except OSError as e:
        logger.debug("cannot register this run in %s: %s", node, e)
        return None
