"""Which configuration a run uses, and why: the decision alone, which sets nothing.

:func:`choose` weighs, in this order, the user's explicit overrides, the script's own earlier
runs (:mod:`autotune.learned`), this host's profile, and the fallback rule; :func:`autotune.apply`
gathers what it needs (profile, the script's runs, free cores) and applies the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from autotune.config import (
    MAX_THREADS,
    NO_LIMITS,
    PRECISIONS,
    Allowed,
    RunConfig,
    standalone_config,
)
from autotune.costmodel import CostModel, LoopRelation
from autotune.errors import ConfigError
from autotune.features import ModelFeatures
from autotune.host import HostFingerprint
from autotune.profile import PREFERENCE_MARGIN, Profile, ProfileEntry
from autotune.transfer import is_prediction, robust_best, scale_error_of, scenarios_of

logger = logging.getLogger(__name__)

if TYPE_CHECKING:  # imported where a script has runs to learn from (apply stays fast)
    from autotune.learned import OwnTimes, ScriptChoice


def fallback_config(host: HostFingerprint, allowed: Allowed = NO_LIMITS) -> RunConfig:
    """The seed's rule: cpp_standalone with the memory-aware thread count (1 thread = no OpenMP),
    at most ``allowed.max_threads`` threads.

    Where standalone cannot serve the script: Brian2's default (runtime, Cython or numpy; Cython
    where numpy cannot serve it either, and it may fail as Brian2's default would).
    """
    if allowed.standalone:
        cap = allowed.max_threads
        threads = host.max_threads if cap is None else min(host.max_threads, cap)
        return standalone_config(0 if threads <= 1 else threads)
    return RunConfig("runtime", "cython" if allowed.cython or not allowed.numpy else "numpy")


def check_overrides(host: HostFingerprint, device: str | None, threads: int | None,
                    precision: str | None, pgo: bool | None = None) -> None:
    """Validate user overrides against this host.

    Raises:
        ConfigError: unknown device/precision, threads outside 0..usable CPUs, or a
            profile-guided build asked of the runtime device.
    """
    if pgo and device == "runtime":
        raise ConfigError("--pgo applies to cpp_standalone builds; drop it or use --device "
                          "cpp_standalone")
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


def choose(
    host: HostFingerprint,
    profile: Profile | None,
    *,
    duration: float | None = None,
    device: str | None = None,
    threads: int | None = None,
    precision: str | None = None,
    allowed: Allowed = NO_LIMITS,
    no_profile_reason: str = "no profile for this host",
    why_not_standalone: str = "",
    history: Mapping[str, OwnTimes] | None = None,
    cold: Collection[str] = (),
    relations: Mapping[str, LoopRelation] | None = None,
    pgo: bool | None = None,
    repeats: int = 1,
    log: bool = True,
) -> tuple[RunConfig, str, str, float | None]:
    """Decide the configuration (pure: sets nothing). Returns (config, source, reason, predicted).

    ``profile`` is measured on the coming model or another, or predicted for the coming model
    from the host's suite (:mod:`autotune.transfer`: source ``suite``). ``allowed`` says what
    may serve the script; its ``max_threads`` (cores left free by other runs on this node)
    bounds the OpenMP threads of a configuration chosen from the profile or the fallback rule,
    and without its ``float32`` (the coming model is not the one whose float32 results the
    profile validated) only float64 configurations are chosen from the profile; explicit
    ``threads`` and ``precision`` win. ``history`` (the script's own times per configuration, see
    :mod:`autotune.learned`) takes precedence over the profile's predictions. ``cold`` names
    the configurations (keys) whose build would be new here: their cold build counts, spread
    over the runs the script is expected to get (:func:`mind_cold_builds`; at least
    ``repeats``, what this host's other scripts got), and the prediction includes it.
    ``relations`` (a suite's, for a predicted profile) tie one configuration's loop to
    another's, so that the script's own runs of one correct the other. ``pgo`` asks for a
    profile-guided build (True, which implies cpp_standalone) or forbids it (False). ``log``
    False keeps the candidates' DEBUG line out of the log (a second look at the same run).

    Raises:
        ConfigError: on invalid overrides, or an override that implies cpp_standalone (a device,
            or any thread count, 0 included) where the script cannot run under it.
    """
    check_overrides(host, device, threads, precision, pgo)
    if not allowed.standalone and (device == "cpp_standalone" or threads is not None or pgo):
        what = ("--device cpp_standalone" if device == "cpp_standalone" else
                "--num-threads" if threads is not None else "--pgo")
        raise ConfigError(f"{what} needs cpp_standalone, which cannot run this script"
                          + (f" ({why_not_standalone})" if why_not_standalone else "")
                          + "; drop it or use --device runtime")
    fixed_rule = fallback_config(host, allowed)
    best, only_float64, tied_with = _profile_best(
        profile, duration, replace(allowed, float32=allowed.float32 or precision is not None),
        fixed_rule)
    if best is not None:
        config, source = best.config, "suite" if is_prediction(profile) else "profile"
        reason = _profile_reason(profile, duration, allowed)  # type: ignore[arg-type]
        if tied_with is not None:
            reason += (f"; {config.key}, the fixed rule's configuration, since it is within "
                       f"{PREFERENCE_MARGIN:.0%} of {tied_with.key} at worst")
    else:
        config = fixed_rule
        source = "fallback"
        reason = f"{no_profile_reason}; using the fallback rule"
    learned = (_learned(profile, history, duration, allowed, relations) if best is not None
               else None)
    if learned is not None:
        config, source, reason = learned.entry.config, "script", learned.reason
    if only_float64:
        reason += (f"; float64, since float32 was validated on "
                   f"{profile.workload.get('name')}, not on this script "  # type: ignore[union-attr]
                   "(check it with `brian2-autotune check-precision SCRIPT`, or ask for it "
                   "with --precision float32)")
    costs = run_costs(profile, history, relations)
    if log and best is not None and logger.isEnabledFor(logging.DEBUG):
        logger.debug("predicted for this run: %s", _candidates_text(
            costs, profile.target_duration if duration is None else duration,  # type: ignore
            cold, profile.allowed(duration, allowed)))  # type: ignore[union-attr]
    if best is not None and cold:
        assert profile is not None
        rivals = profile.allowed(duration, replace(
            allowed, float32=allowed.float32 or precision == "float32"))
        config, reason = mind_cold_builds(
            costs, history, profile.target_duration if duration is None else duration, config,
            reason, cold, rivals, exploring=learned is not None and learned.trying,
            repeats=repeats)
    if device or threads is not None or precision or (pgo is not None and pgo != config.pgo):
        config = _override(config, host, device, threads, precision, profile, duration,
                           allowed.max_threads, pgo)
        source, reason = "override", "set on the command line"
    predicted = None
    cost = costs.get(config.key)
    if cost is not None:
        predicted = cost.predict(duration or profile.target_duration)  # type: ignore[union-attr]
        if config.key in cold:
            predicted += cost.cold_extra
    return config, source, reason, predicted


def _candidates_text(costs: Mapping[str, CostModel], duration: float, cold: Collection[str],
                     allowed: Sequence[ProfileEntry]) -> str:
    """Each allowed configuration's predicted time for this run, fastest first, for the log."""
    priced = sorted((cost.predict(duration), cost.cold_extra if key in cold else 0.0, key)
                    for e in allowed if (cost := costs.get(key := e.config.key)) is not None)
    return ", ".join(f"{key} {seconds:.2f} s" + (f" (+{extra:.1f} s cold)" if extra else "")
                     for seconds, extra, key in priced) or "nothing"


def _profile_best(profile: Profile | None, duration: float | None, allowed: Allowed,
                  baseline: RunConfig) -> tuple[ProfileEntry | None, bool, RunConfig | None]:
    """The profile's entry for this run; whether a float32 winner was passed over (float32
    was not validated on this model); and, where a prediction's near-tie went to
    ``baseline`` (the fixed rule's configuration, :func:`~autotune.transfer.robust_best`),
    the configuration that would have won it otherwise."""
    if profile is None:
        return None, False, None

    def pick(float32: bool, tie_goes_to: RunConfig | None = baseline) -> ProfileEntry | None:
        if is_prediction(profile):
            return robust_best(profile.allowed(duration, replace(allowed, float32=float32)),
                               profile.target_duration if duration is None else duration,
                               scale_error_of(profile), scenarios_of(profile), tie_goes_to)
        return profile.best(duration, replace(allowed, float32=float32))

    best, float32 = pick(True), True
    only_float64 = not (allowed.float32 or best is None or best.config.precision != "float32")
    if only_float64:
        best, float32 = pick(False), False
    tied_with = None
    if best is not None and best.config == baseline and is_prediction(profile):
        otherwise = pick(float32, None)
        tied_with = otherwise.config if otherwise is not None and otherwise != best else None
    return best, only_float64, tied_with


def _profile_reason(profile: Profile, duration: float | None, allowed: Allowed) -> str:
    when = f"{duration:g} s" if duration else f"{profile.target_duration:g} s"
    if is_prediction(profile):
        model = ModelFeatures.from_dict(profile.workload["model"])
        reason = (f"predicted for this model ({model.describe()}) for {when} runs from this "
                  f"host's calibration of {profile.workload['name']}: least slowdown against the "
                  f"fastest if its loop runs up to {scale_error_of(profile):.0f} times faster or "
                  "slower than predicted (the suite's error on models it left out)")
    else:
        reason = f"fastest valid configuration in this host's profile for {when} runs"
    if not allowed.standalone:
        reason += " that runtime can serve" if allowed.cython else " that numpy can serve"
    return reason


def run_costs(profile: Profile | None, history: Mapping[str, OwnTimes] | None,
              relations: Mapping[str, LoopRelation] | None = None) -> dict[str, CostModel]:
    """Every measured configuration's cost model for this run, by key: the script's own (or
    the profile's scaled to the script) where it has runs, else the profile's."""
    if profile is None:
        return {}
    if history:
        from autotune.learned import script_costs

        return script_costs(profile.entries, profile.valid, history, relations)
    return {e.config.key: e.cost for e in profile.entries if e.cost is not None}


def cost_for_run(profile: Profile | None, history: Mapping[str, OwnTimes] | None,
                 config: RunConfig, relations: Mapping[str, LoopRelation] | None = None
                 ) -> CostModel | None:
    """``config``'s cost model for this run (one entry of :func:`run_costs`, computed alone:
    what :func:`autotune.apply` records the run against)."""
    entry = profile.entry(config) if profile is not None else None
    if entry is None or entry.cost is None:
        return None
    if history:
        from autotune.learned import script_costs

        return script_costs([entry], profile.valid, history,  # type: ignore[union-attr]
                            relations).get(config.key)
    return entry.cost


def mind_cold_builds(costs: Mapping[str, CostModel], history: Mapping[str, OwnTimes] | None,
                     duration: float, chosen: RunConfig, reason: str,
                     cold: Collection[str], allowed: Sequence[ProfileEntry],
                     exploring: bool = False, repeats: int = 1) -> tuple[RunConfig, str]:
    """Keep ``chosen``, unless its build would be cold here and another allowed configuration
    costs less once each one's cold build is counted: spread over the runs the script is
    expected to get, taken as the runs it has had, or ``repeats`` (the runs this host's other
    scripts got, :func:`~autotune.learned.expected_repeats`) where that is more; at least one.

    With one expected run this is rent-or-buy's break-even rule: keep paying the slower
    configuration until what it cost beyond the faster one would have paid for the build. A
    10-s STDP script, never run, had numpy predicted 12.3 s against standalone's 4.3 s plus an
    8.5 s build: two numpy runs of 11 s came before the build, then 3.5 s runs. On a host whose
    scripts are run again, the first run pays the build. Where the slower run lasts as long
    as the build, ``brian2-autotune run`` builds it beside that run
    (:mod:`autotune.buildahead`), so that the second run finds it built.

    A configuration the script's own runs would try (``exploring``: untried, predicted within
    noise of the fastest it ran, or faster) is tried anyway once its cold build and predicted
    loss are within :data:`~autotune.learned.MAX_EXPLORE_LOSS` of the time the script's runs
    have taken (:func:`exploration_paid`).

    The choice and the reason are returned; a choice that pays no cold build is kept.
    """
    if chosen.key not in cold:
        return chosen, reason
    if exploring and (paid := exploration_paid(costs, history, duration, chosen)) is not None:
        return chosen, f"{reason}; {paid}"
    from autotune.learned import runs_to_come

    had = sum(t.runs for t in (history or {}).values())
    expected_runs = runs_to_come(history, repeats)
    habit = (f" (the {expected_runs} runs this host's scripts get, median)"
             if repeats > max(1, had) else "")

    def _same_build_as_chosen(config: RunConfig) -> bool:
        # a rival with the same cold build is the profile's choice to make, not the build's
        return config != chosen and config.key in cold and _same_build(config, chosen)

    def effective(config: RunConfig, runs: int) -> float | None:
        cost = costs.get(config.key)
        if cost is None:
            return None
        return cost.predict(duration) + (cost.cold_extra / runs if config.key in cold else 0.0)

    def cheapest_over(runs: int) -> tuple[float, RunConfig] | None:
        priced = [(cost, e.config) for e in allowed
                  if not _same_build_as_chosen(e.config)
                  and (cost := effective(e.config, runs)) is not None]
        return min(priced, key=lambda pair: pair[0]) if priced else None

    best = cheapest_over(expected_runs)
    mine = effective(chosen, expected_runs)
    if best is None or mine is None:
        return chosen, reason
    cheapest, config = best
    extra = costs[chosen.key].cold_extra
    if _keeps(best, chosen, mine):
        # the habit decided only if spreading the build over the script's own runs would not
        if habit and not _keeps(cheapest_over(max(1, had)), chosen,
                                effective(chosen, max(1, had))):
            reason += (f"; its build here is new (+{extra:.1f} s) and pays back over "
                       f"{expected_runs} runs{habit}")
        return chosen, reason
    from autotune.learned import MAX_EXPLORE_LOSS, REPEATS_CAP

    if _close_and_pays_back(cheapest, mine, chosen, cheapest_over, effective):
        return chosen, (f"{reason}; its build here is new (+{extra:.1f} s), which puts this run "
                        f"within {100 * MAX_EXPLORE_LOSS:.0f} % of {config.key}'s "
                        f"{cheapest:.2f} s, and pays back over {REPEATS_CAP} runs")
    return config, (f"{reason}, but {chosen.key}'s build here would be new: its cold build "
                    f"(+{extra:.1f} s) does not pay back over {expected_runs} run"
                    f"{'s' if expected_runs != 1 else ''} of this script{habit}, so "
                    f"{config.key} ({cheapest:.2f} s with "
                    f"{'its' if config.key in cold else 'no'} cold build counted)")


def _same_build(config: RunConfig, other: RunConfig) -> bool:
    """Whether two configurations compile the same generated code the same way (threads and
    precision aside), so that their cold builds cost the same: a build both would pay is no
    reason to prefer one. Brunel & Hakim at 10 s, never run: the suite chose 2 threads, both
    standalone builds were new, and the cold-build rule, pricing each by its own prediction,
    switched to no OpenMP, which ran 8.77 s a warm run against 2 threads' 7.70 s."""
    return (config.set_up_family == other.set_up_family and config.flags == other.flags
            and config.pgo == other.pgo)


def _close_and_pays_back(cheapest: float, mine: float, chosen: RunConfig,
                         cheapest_over: Callable[[int], tuple[float, RunConfig] | None],
                         effective: Callable[[RunConfig, int], float | None]) -> bool:
    """Whether ``chosen``'s cold build is paid though a cheaper configuration was found for
    the runs expected: with it this run is within :data:`~autotune.learned.MAX_EXPLORE_LOSS`
    of the cheapest (``mine`` against ``cheapest``), and it pays back over
    :data:`~autotune.learned.REPEATS_CAP` runs. A 10-s STDP script, never run: numpy predicted
    24.0 s, standalone 25.1 s with its 19.6-s build; numpy ran 22.4 s, standalone 20.8 s with
    its build, and 6.5 s each run after."""
    from autotune.learned import MAX_EXPLORE_LOSS, REPEATS_CAP

    if mine > cheapest * (1 + MAX_EXPLORE_LOSS):
        return False
    return _keeps(cheapest_over(REPEATS_CAP), chosen, effective(chosen, REPEATS_CAP))


def _keeps(best: tuple[float, RunConfig] | None, chosen: RunConfig, mine: float | None
           ) -> bool:
    """Whether ``chosen``, priced ``mine``, stands against ``best`` (the cheapest allowed
    configuration and its price; unknown prices keep it)."""
    if best is None or mine is None:
        return True
    cheapest, config = best
    return config == chosen or cheapest >= mine


def exploration_paid(costs: Mapping[str, CostModel], history: Mapping[str, OwnTimes] | None,
                     duration: float, chosen: RunConfig) -> str | None:
    """Why trying ``chosen``, untried and cold, is worth its build now (None when it is not).

    The rent-or-buy rule of :func:`mind_cold_builds` weighs a build against the saving the
    prediction promises, and a prediction from other models can be far off: a script of Wang &
    Buzsaki's network, left out of the suite, had 2 threads predicted 2 % faster than none
    (0.7 s a run, so the 9.8 s build would pay back after 14 runs), and its 100-s runs took 36 %
    less time with them. Trying bounds what is lost instead: the build and the predicted loss,
    at most ``MAX_EXPLORE_LOSS`` of the time the script's runs have taken so far, whatever the
    prediction promises. Each configuration is tried once; its own times decide after that.
    """
    if not history:
        return None
    from autotune.learned import MAX_EXPLORE_LOSS

    cost = costs.get(chosen.key)
    tried = [c.predict(duration) for key, c in costs.items() if key in history]
    if cost is None or not tried:
        return None
    spent = sum(t.seconds for t in history.values())
    price = cost.cold_extra + max(0.0, cost.predict(duration) - min(tried))
    if price > MAX_EXPLORE_LOSS * spent:
        return None
    return (f"its cold build here (+{cost.cold_extra:.1f} s) is paid to try it: with its "
            f"predicted loss, {price:.1f} s, within {100 * MAX_EXPLORE_LOSS:.0f} % of the "
            f"{spent:.0f} s this script's runs have taken")


def _learned(profile: Profile | None, history: Mapping[str, OwnTimes] | None,
             duration: float | None, allowed: Allowed,
             relations: Mapping[str, LoopRelation] | None = None) -> ScriptChoice | None:
    """The choice the script's own runs lead to (None without runs or profile)."""
    if not history or profile is None:
        return None
    d = profile.target_duration if duration is None else duration
    from autotune.learned import choose_from_runs

    return choose_from_runs(profile.allowed(d, allowed), profile.valid, history, d, relations)


def _override(config: RunConfig, host: HostFingerprint, device: str | None,
              threads: int | None, precision: str | None, profile: Profile | None,
              duration: float | None, thread_cap: int | None, pgo: bool | None = None
              ) -> RunConfig:
    if (threads is not None or pgo) and device is None:
        device = "cpp_standalone"
    device = device or config.device
    precision = precision or config.precision
    if device == "cpp_standalone":
        if threads is None:
            threads = config.threads if config.device == "cpp_standalone" else (
                _best_threads(profile, duration, thread_cap) if profile else fallback_config(
                    host, Allowed(max_threads=thread_cap)).threads)
        flags = config.flags if config.device == "cpp_standalone" else "default"
        return standalone_config(threads, precision, flags, config.pgo if pgo is None else pgo)
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
