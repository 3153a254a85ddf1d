"""What a script's own runs teach: its times per configuration, and the choice for its next run.

Every run made through ``brian2-autotune run`` or ``apply()`` is recorded with a hash of the
script's text (:mod:`autotune.runrecord`), so an edited script starts afresh. The next run of
the same script learns from them (:func:`choose_from_runs`):

- a configuration the script already ran is predicted from its own times: the median seconds
  outside the simulation loop over its warm runs (while it has only cold ones, theirs less the
  seconds they spent compiling, measured, or for runs recorded without that, less the cold
  build the profile measured), plus the median loop seconds per simulated second;
- one it has not run is predicted from the profile's cost model (measured on another model),
  scaled by how this script's own times compared with the profile's predictions for the
  configurations it did run: the set-up part and the loop part each by their median ratio;
- when an untried configuration is predicted within the noise of the fastest one tried
  (:data:`EXPLORE_WITHIN`, wider when the script's own runs disagree more, never beyond
  :data:`MAX_EXPLORE_LOSS`), the run tries it, once, and its own times decide from then on. An
  untried configuration predicted faster than every tried one is tried as well: it is the best
  guess.

A run that shared its CPUs with other work (the runs of a parallel sweep started together) is
recorded with how many CPUs it was left (:attr:`~autotune.runrecord.RunRecord.crowded`): its
times are not its configuration's. Where it kept one CPU busy (one thread, a warm build), it
teaches its times at the pace of its own CPU time (what it would have taken with a CPU of its
own: :meth:`~autotune.runrecord.RunRecord.times_alone`); other crowded runs teach nothing.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from autotune.config import threads_in_key
from autotune.costmodel import CostModel, LoopRelation

if TYPE_CHECKING:
    from autotune.profile import ProfileEntry
    from autotune.runrecord import RunRecord

#: An untried configuration predicted within this fraction of the fastest tried one is tried.
EXPLORE_WITHIN = 0.05
#: Never try a configuration predicted slower than the fastest tried one by more than this.
MAX_EXPLORE_LOSS = 0.10
#: A new script is expected to be run at most this many times, however often this host's other
#: scripts were: a first run that pays a cold build on that expectation, of a script that is
#: then never run again, loses at most 1 - 1/REPEATS_CAP of the build.
REPEATS_CAP = 4


def expected_repeats(other_scripts_runs: Sequence[int]) -> int:
    """How many runs a script is expected to get on this host before it has had many: the
    median of the runs this host's other scripts have had (1 with none), at most
    :data:`REPEATS_CAP`."""
    if not other_scripts_runs:
        return 1
    return max(1, min(REPEATS_CAP, int(statistics.median_low(other_scripts_runs))))


def runs_to_come(history: Mapping[str, OwnTimes] | None, repeats: int) -> int:
    """The runs a script is expected to get, over which a cold build is spread: the runs it has
    had (``history``, its own times per configuration), or ``repeats``
    (:func:`expected_repeats`) where that is more; at least one."""
    had = sum(t.runs for t in (history or {}).values())
    return max(1, had, repeats)


@dataclass(frozen=True)
class OwnTimes:
    """One configuration's times in one script's own runs.

    Attributes:
        config_key: the configuration.
        runs: successful runs of the script with it.
        warm_runs: those whose build folder was already built.
        build: median wall seconds outside the simulation loop (interpreter, imports, set-up,
            build), over the warm runs, or over the cold ones while there is no warm run.
        rate: median loop seconds per simulated second.
        spread: relative half-range of its runs' estimates of a run of their median length:
            how much they disagree (0 with one run).
        cold_extra: what a cold build added to the script's set-up: the median over its cold
            runs less ``build`` where it has warm runs too; while it has only cold ones, the
            median of what they spent compiling (:attr:`RunRecord.compile_seconds`); None
            where neither is known (runs recorded before compiling was timed).
        seconds: wall seconds its runs took in all (what trying another configuration is
            weighed against: :data:`MAX_EXPLORE_LOSS`).
    """

    config_key: str
    runs: int
    warm_runs: int
    build: float
    rate: float
    spread: float = 0.0
    cold_extra: float | None = None
    seconds: float = 0.0

    def predict(self, duration: float) -> float:
        """Wall seconds of a warm run of this script for ``duration`` simulated seconds (its
        runs' set-up, or while all were cold, that less their compiling where it was timed)."""
        return self.warm_build(0.0) + self.rate * duration

    @property
    def warm_build_measured(self) -> bool:
        """Whether its warm set-up is measured: it has warm runs, or cold ones whose
        compiling was timed (:attr:`cold_extra`), not a guess of what their build took."""
        return bool(self.warm_runs) or self.cold_extra is not None

    def warm_build(self, cold_extra: float, fixed: float | None = None) -> float:
        """Seconds outside the loop of a warm run: the measured ones, or, while every run was
        cold, theirs less what they spent compiling where that was timed (:attr:`cold_extra`),
        else less ``cold_extra`` (what a cold build adds). Where that is the profile's
        guess, with its warm set-up ``fixed``, and the cold runs took less than the two
        together, their set-up is split in the profile's proportions instead: a build quicker
        than the profile's guess left nothing (0 s) for the warm set-up, and the run after it
        was predicted 24 % short (Wang & Buzsaki 1000: a 15.9 s cold set-up against 17.6 s
        guessed for the build alone)."""
        if self.warm_runs:
            return self.build
        if self.cold_extra is not None:
            return max(0.0, self.build - self.cold_extra)
        if fixed is not None and fixed > 0 and self.build < fixed + cold_extra:
            return self.build * fixed / (fixed + cold_extra)
        return max(0.0, self.build - cold_extra)

    def cost(self, cold_extra: float = 0.0, fixed: float | None = None) -> CostModel:
        """These times as a cost model of a warm run, whose cold build costs ``cold_extra``
        more (what the run is predicted and recorded against; ``fixed``: see
        :meth:`warm_build`)."""
        return CostModel(self.warm_build(cold_extra, fixed), self.rate, samples=self.runs,
                         cold_extra=cold_extra, spread=self.spread)

    def describe(self) -> str:
        """``3 runs: 2.10 s + 0.450 s per simulated second``."""
        return (f"{self.runs} run{'s' if self.runs != 1 else ''}: {self.build:.2f} s + "
                f"{self.rate:.3g} s per simulated second")


def of_size(records: Sequence[RunRecord], neurons: int, synapses: int
            ) -> tuple[list[RunRecord], int]:
    """The runs that built a model of this size (by their dry passes: ``dry_neurons``,
    ``dry_synapses``), and how many built another: a script whose size comes from an
    argument, an environment variable or a data file (``N=4000 brian2-autotune run
    model.py``) keeps one text, and its runs of 500 neurons say little of its runs of 4000.
    Sizes match where the neurons are equal and the synapses as near as the seeds of one
    model draw them (:func:`autotune.drypass.synapses_alike`); a run recorded without its
    dry pass's size is kept."""
    from autotune.drypass import synapses_alike

    def same(record: RunRecord) -> bool:
        if record.dry_neurons is None or record.dry_synapses is None:
            return True
        return record.dry_neurons == neurons and synapses_alike(record.dry_synapses, synapses)

    kept = [record for record in records if same(record)]
    return kept, len(records) - len(kept)


def by_size(records: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """``records`` (one script's, oldest first) split by the size of the model each built, in
    the order each size first ran; runs recorded without their dry pass's size make a group
    of their own (see :func:`of_size`)."""
    groups: list[list[RunRecord]] = []
    unsized: list[RunRecord] = []
    for record in records:
        if record.dry_neurons is None or record.dry_synapses is None:
            unsized.append(record)
            continue
        home = next((group for group in groups if of_size(
            [record], group[0].dry_neurons, group[0].dry_synapses)[0]), None)  # type: ignore[arg-type]
        if home is None:
            groups.append([record])
        else:
            home.append(record)
    return groups + ([unsized] if unsized else [])


def learn(records: Iterable[RunRecord]) -> dict[str, OwnTimes]:
    """Each configuration's times over one script's successful runs, as with CPUs of their
    own (a run that failed, that Brian2's timer did not see, that took a profile-guided
    build's profile with an instrumented binary, or that shared its CPUs in a way its CPU
    time cannot undo (:meth:`RunRecord.times_alone`) teaches nothing of later runs)."""
    by_config: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        alone = record.times_alone()
        if (record.exit_code in (0, None) and record.simulated and record.simulated > 0
                and alone is not None and record.pgo_phase != "generate"):
            by_config[record.config_key].append(
                replace(record, actual_build=alone[0], actual_loop=alone[1]))
    return {key: _own_times(key, runs) for key, runs in by_config.items()}


def _own_times(key: str, runs: Sequence[RunRecord]) -> OwnTimes:
    """``runs`` (successful, timed: see :func:`learn`) as one configuration's times."""
    warm = [r for r in runs if not r.cold]
    basis = warm or list(runs)
    build = statistics.median(_seconds(r.actual_build) for r in basis)
    rate = statistics.median(_seconds(r.actual_loop) / _seconds(r.simulated) for r in runs)
    typical = statistics.median(_seconds(r.simulated) for r in basis)
    estimates = [_seconds(r.actual_build) + _seconds(r.actual_loop) / _seconds(r.simulated)
                 * typical for r in basis]
    centre = build + rate * typical
    spread = (max(estimates) - min(estimates)) / (2 * centre) if centre > 0 else 0.0
    cold_builds = [_seconds(r.actual_build) for r in runs if r.cold]
    compiled = [r.compile_seconds for r in runs if r.cold and r.compile_seconds is not None]
    if warm:
        cold_extra = max(0.0, statistics.median(cold_builds) - build) if cold_builds else None
    else:
        cold_extra = min(build, statistics.median(compiled)) if compiled else None
    seconds = sum(_seconds(r.actual_build) + _seconds(r.actual_loop) for r in runs)
    return OwnTimes(key, len(runs), len(warm), build, rate, spread, cold_extra, seconds)


def _seconds(value: float | None) -> float:
    """A time :func:`learn` made sure is there."""
    assert value is not None
    return value


@dataclass(frozen=True)
class Scale:
    """How this script's times compare with the profile's predictions (1.0: as predicted)."""

    build: float = 1.0
    loop: float = 1.0
    #: whether ``build`` comes from warm runs (not from cold ones less an assumed build cost)
    build_from_warm: bool = False

    def apply_to(self, cost: CostModel) -> CostModel:
        """The profile's cost model scaled to this script."""
        return replace(cost, fixed=cost.fixed * self.build, rate=cost.rate * self.loop)


def scale_to_script(entries: Sequence[ProfileEntry], own: Mapping[str, OwnTimes]) -> Scale:
    """The median ratios of this script's own times to the profile's cost models, over the
    configurations both measured (1.0 where none was). The set-up's ratio comes from the
    configurations whose warm set-up was measured where there are any (warm runs, or cold ones
    whose compiling was timed): a configuration run only cold without that knows its warm
    set-up only as its cold one less the profile's cold build, which may be another
    model's."""
    warm_builds: list[float] = []
    cold_builds: list[float] = []
    loops = []
    for entry in entries:
        times, cost = own.get(entry.config.key), entry.cost
        if times is None or cost is None:
            continue
        if cost.rate > 0 and times.rate > 0:
            loops.append(times.rate / cost.rate)
        set_up = times.warm_build(cost.cold_extra, cost.fixed)
        if cost.fixed > 0 and set_up > 0:
            (warm_builds if times.warm_build_measured else cold_builds).append(
                set_up / cost.fixed)
    builds = warm_builds or cold_builds
    return Scale(statistics.median(builds) if builds else 1.0,
                 statistics.median(loops) if loops else 1.0, bool(warm_builds))


@dataclass(frozen=True)
class ScriptChoice:
    """The configuration a script's own runs lead to, its cost model for this script (its
    own times, or the profile's scaled), its predicted wall seconds, and why."""

    entry: ProfileEntry
    cost: CostModel
    predicted: float
    reason: str
    trying: bool


def script_costs(entries: Sequence[ProfileEntry], valid: Sequence[ProfileEntry],
                 own: Mapping[str, OwnTimes],
                 relations: Mapping[str, LoopRelation] | None = None) -> dict[str, CostModel]:
    """Each entry's cost model for this script: from its own times where it ran with it,
    else the profile's, scaled by the script's own runs of other configurations; its loop
    from the script's own runs of a related configuration where ``relations`` (a suite's,
    :func:`autotune.transfer.loop_relations`) tie the two."""
    scale = scale_to_script(valid, own)
    learned_cold = standalone_cold_build(own)
    costs = {}
    for entry in entries:
        times = own.get(entry.config.key)
        cold_extra = entry.cost.cold_extra if entry.cost else 0.0
        guessed_fixed = entry.cost.fixed if entry.cost else None  # beside a guessed cold build
        if learned_cold is not None and _plain_standalone_build(entry.config.key):
            cold_extra, guessed_fixed = learned_cold, None
        if times is not None:
            cost = (times.cost(cold_extra, guessed_fixed) if times.cold_extra is None
                    else times.cost(times.cold_extra))
            if (not times.warm_build_measured and scale.build_from_warm
                    and entry.cost is not None and guessed_fixed is not None):
                # Only cold runs, less a cold build the profile guessed: its warm set-up is at
                # least what the script's warm runs of other configurations make of the
                # profile's (a cold build that took less than the guess would otherwise leave
                # a warm set-up of ~0 s). The script's own cold build needs no such floor.
                cost = replace(cost, fixed=max(cost.fixed, scale.apply_to(entry.cost).fixed))
            costs[entry.config.key] = cost
        elif entry.cost is not None:
            cost = replace(scale.apply_to(entry.cost), cold_extra=cold_extra)
            related = related_rate(entry.config.key, own, relations or {})
            costs[entry.config.key] = cost if related is None else replace(cost, rate=related)
    return costs


def standalone_cold_build(own: Mapping[str, OwnTimes]) -> float | None:
    """What a cold cpp_standalone build adds to this script's set-up, from its own runs: the
    median over the standalone configurations it ran both cold and warm (None without one).

    A build compiles the script's own generated code, whatever the thread count, precision or
    flag preset, so this tells the cold build of a standalone configuration it has not run
    better than the profile, measured on other models (on Wang & Buzsaki 1000, 10.7 s against
    the suite's predicted 17.6 s, which kept 2 threads from the script until its sixth run).
    Profile-guided builds pay an instrumented run as well and are left out."""
    extras = [t.cold_extra for key, t in own.items()
              if t.cold_extra is not None and _plain_standalone_build(key)]
    return statistics.median(extras) if extras else None


def _plain_standalone_build(config_key: str) -> bool:
    """Whether the configuration (by key) builds standalone without a profile-guided phase."""
    return config_key.startswith("cpp_standalone") and not config_key.endswith("-pgo")


def related_rate(key: str, own: Mapping[str, OwnTimes],
                 relations: Mapping[str, LoopRelation]) -> float | None:
    """The loop rate of configuration ``key`` that a relation gives from the script's own
    runs of the configuration it is tied to (either way round); None without one."""
    relation = relations.get(key)
    if relation is not None and relation.base in own:
        return relation.from_base(own[relation.base].rate)
    for other, relation in relations.items():
        if relation.base == key and other in own:
            return relation.to_base(own[other].rate)
    return None


def choose_from_runs(allowed: Sequence[ProfileEntry], valid: Sequence[ProfileEntry],
                     own: Mapping[str, OwnTimes], duration: float,
                     relations: Mapping[str, LoopRelation] | None = None
                     ) -> ScriptChoice | None:
    """The configuration for the script's next run, from its own runs (None when it has
    none to learn from).

    Args:
        allowed: the profile's entries this run may use (see :meth:`Profile.allowed`).
        valid: all the profile's valid entries (the scale is learned over all of them).
        own: the script's times per configuration key (:func:`learn`).
        duration: simulated seconds of the coming run.
        relations: loop relations between configurations (see :func:`script_costs`).
    """
    if not own or not allowed:
        return None
    costs = script_costs(allowed, valid, own, relations)

    def estimate(entry: ProfileEntry) -> float:
        return costs[entry.config.key].predict(duration)

    def chosen(entry: ProfileEntry, reason: str, trying: bool) -> ScriptChoice:
        return ScriptChoice(entry, costs[entry.config.key], estimate(entry), reason, trying)

    ranked = sorted((e for e in allowed if e.config.key in costs), key=estimate)
    tried = [e for e in ranked if e.config.key in own]
    if not tried or ranked[0] is not tried[0]:
        fastest = ranked[0]
        reason = _scaled_reason(fastest, own, scale_to_script(valid, own))
        if related_rate(fastest.config.key, own, relations or {}) is not None:
            reason += ("; its loop from this script's own runs of a configuration the suite "
                       "ties it to (thread count)")
        return chosen(fastest, reason, True)
    leader = tried[0]
    times = own[leader.config.key]
    within = min(MAX_EXPLORE_LOSS, max(EXPLORE_WITHIN, times.spread))
    limit = estimate(leader) * (1 + within)
    untried = [e for e in ranked if e.config.key not in own and estimate(e) <= limit]
    if untried:
        other = untried[0]
        return chosen(other, (
            f"trying {other.config.key}: predicted {estimate(other):.2f} s (the profile scaled "
            f"to this script), within {100 * within:.0f} % of {leader.config.key}'s "
            f"{estimate(leader):.2f} s from this script's own {times.describe()}"), True)
    return chosen(leader, (
        f"fastest of the {len(tried)} configuration{'s' if len(tried) != 1 else ''} this script "
        f"ran, by its own runs ({leader.config.key}, {times.describe()}); no other is "
        f"predicted within {100 * within:.0f} % of it"
        + _unmeasured_twin_note(leader.config.key, own, relations or {}, costs, duration)),
        False)


def _unmeasured_twin_note(key: str, own: Mapping[str, OwnTimes],
                          relations: Mapping[str, LoopRelation],
                          costs: Mapping[str, CostModel], duration: float) -> str:
    """For a choice whose other thread count this script never ran: that its loop came from
    the suite's loop relation, which misses for a model whose work the suite's models do not
    share (2 threads on a CUBA-like network predicted faster, 1.3 times slower), and how to
    measure it once. Empty when there is no such twin."""
    twins = [other for other, relation in relations.items() if relation.base == key]
    if key in relations:
        twins.append(relations[key].base)
    untried = [twin for twin in twins if twin not in own and twin in costs]
    if not untried:
        return ""
    twin = min(untried, key=lambda k: costs[k].predict(duration))
    threads = threads_in_key(twin) or 0
    return (f"; {twin} was never run by this script, only predicted from this one's loop by "
            f"the suite's loop relation ({costs[twin].predict(duration):.2f} s), which can be "
            f"wrong for a model unlike the suite's: one run with --num-threads {threads} "
            f"(apply(threads={threads}) in a script) measures it")


def _scaled_reason(entry: ProfileEntry, own: Mapping[str, OwnTimes], scale: Scale) -> str:
    runs = sum(t.runs for t in own.values())
    return (f"predicted fastest for this script: the profile's cost models scaled by its own "
            f"{runs} run{'s' if runs != 1 else ''} (set-up x{scale.build:.2f}, loop "
            f"x{scale.loop:.2f}); {entry.config.key} not run by it yet")
