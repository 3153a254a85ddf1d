"""Paired comparison of the top configurations, from interleaved confirmation rounds.

After the search, the configurations closest to the best are run again in rounds: each round runs
every remaining contender once, back to back, so the runs of one round share the machine's state.
Comparing two contenders round by round (the log of the ratio of their estimates of a full run
in the same round) cancels the drift that spans rounds, which on a shared host is larger than
the differences the confirmation has to resolve (the search measured each configuration minutes
apart). Each contender's gap to the leader is the mean of those paired log ratios, with a
Student-t interval over the rounds. :func:`confirm_finalists` runs the rounds of a calibration
through its measurer; the statistics above it need nothing but the numbers.

A gap is *resolved* once its interval's lower end reaches ``1 / (1 + margin)``: then, with 90 %
confidence, the contender is no more than ``margin`` faster than the leader, so choosing the
leader loses at most the noise target, whatever more rounds would say (a contender whose
interval lies wholly above 1 is also *slower* than the leader). Unresolved contenders run
further rounds, up to a limit.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from autotune.config import RunConfig
from autotune.costmodel import at_level, estimates, shared_fixed, within_shared_fixed
from autotune.records import Evaluation, TrialResult

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

#: Configurations predicted within this fraction of the best are confirmed even when their own
#: spreads say they are not tied: each configuration's trials ran minutes apart, in one window of
#: the host's drift, which its spread cannot see (on the 2-CPU development VM a configuration
#: measured in a quiet window came out 10 % ahead, on its fixed part, of siblings differing only
#: in precision or flags, which the exhaustive search measured within 2 %).
CONFIRM_MARGIN = 0.25

#: One-sided 90 % quantiles of Student's t by degrees of freedom (rounds - 1): each side of an
#: 80 % two-sided interval. Beyond the table the normal quantile is close enough.
_T90 = {1: 3.078, 2: 1.886, 3: 1.638, 4: 1.533, 5: 1.476, 6: 1.440, 7: 1.415, 8: 1.397,
        9: 1.383, 10: 1.372}
_T90_LARGE = 1.282

#: One round: each contender's estimate (wall seconds of a full run) measured in that round.
Round = Mapping[K, float]


@dataclass(frozen=True)
class Gap(Generic[K]):
    """How much slower ``config`` is than the leader, from the rounds both ran in.

    Attributes:
        config: the contender.
        ratio: geometric mean over rounds of its estimate / the leader's (1.0: as fast).
        low: lower end of the 80 % interval of that ratio.
        high: upper end of the 80 % interval.
        rounds: rounds in which both ran.
    """

    config: K
    ratio: float
    low: float
    high: float
    rounds: int

    @property
    def slower(self) -> bool:
        """Whether it is slower than the leader beyond the noise."""
        return self.low > 1.0

    def resolved(self, margin: float) -> bool:
        """Whether it is, beyond the noise, at most ``margin`` faster than the leader: choosing
        the leader then costs at most that, so more rounds would not change what to do."""
        return self.low >= 1 / (1 + margin)

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-able form (without the configuration); unknown bounds are None."""
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {"ratio": finite(self.ratio), "low": finite(self.low),
                "high": finite(self.high), "rounds": self.rounds}


def _paired_logs(rounds: Sequence[Round[K]], a: K, b: K) -> list[float]:
    return [math.log(r[a] / r[b]) for r in rounds if a in r and b in r and r[a] > 0 and r[b] > 0]


def gap(rounds: Sequence[Round[K]], config: K, leader: K) -> Gap[K]:
    """``config``'s paired gap to ``leader`` over ``rounds``.

    With one common round the interval is unbounded (nothing is known about the noise yet).
    """
    logs = _paired_logs(rounds, config, leader)
    if not logs:
        return Gap(config, math.nan, 0.0, math.inf, 0)
    centre = statistics.fmean(logs)
    if len(logs) < 2:
        return Gap(config, math.exp(centre), 0.0, math.inf, 1)
    half = _T90.get(len(logs) - 1, _T90_LARGE) * statistics.stdev(logs) / math.sqrt(len(logs))
    return Gap(config, math.exp(centre), math.exp(centre - half), math.exp(centre + half),
               len(logs))


def leader(rounds: Sequence[Round[K]], contenders: Sequence[K]) -> K:
    """The contender that is fastest against all the others, paired round by round (the lowest
    sum of its mean paired log ratios to each other contender)."""
    def score(candidate: K) -> float:
        total = 0.0
        for other in contenders:
            logs = _paired_logs(rounds, candidate, other)
            total += statistics.fmean(logs) if logs else 0.0
        return total

    return min(contenders, key=score)


def rank(rounds: Sequence[Round[K]], contenders: Sequence[K]) -> tuple[K, list[Gap[K]]]:
    """The leader and every other contender's gap to it, smallest gap first."""
    first = leader(rounds, contenders)
    gaps = [gap(rounds, c, first) for c in contenders if c != first]
    return first, sorted(gaps, key=lambda g: (math.isnan(g.ratio), g.ratio))


# --- the confirmation rounds of a calibration ------------------------------------------------


class Remeasurer(Protocol):
    """What the confirmation needs of the calibration's measurer (:class:`~autotune.measure.
    Measurer`): one more trial of a configuration, its refit evaluation, its trials so far."""

    settings: Any  # .target_duration, .noise_target
    results: dict[RunConfig, list[TrialResult]]

    def confirmation_trial(self, config: RunConfig) -> TrialResult: ...

    def refit(self, config: RunConfig) -> Evaluation: ...

    def check_load(self) -> dict[str, Any]: ...

    def announce_confirmation(self, contenders: list[RunConfig]) -> None: ...


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation concluded.

    Attributes:
        ranking: the confirmed configurations, fastest first (empty when nothing came close to
            the best; one when the others failed while being confirmed).
        gaps: each non-leading one's paired gap to the leader.
        rounds: interleaved rounds run.
    """

    ranking: list[RunConfig]
    gaps: dict[RunConfig, Gap[RunConfig]]
    rounds: int


def confirm_finalists(measurer: Remeasurer, evaluations: dict[RunConfig, Evaluation], top: int,
                      min_rounds: int, max_rounds: int,
                      within: float = CONFIRM_MARGIN) -> Confirmation:
    """Re-measure the valid configurations close to the best (at most ``top``, predicted within
    the fraction ``within`` of it or tied) in interleaved rounds, paired round by round; return
    the ranking.

    After ``min_rounds`` rounds a contender whose gap to the leader is resolved (it is, with
    90 % confidence, at most the noise target faster than the leader) stops; the others go on,
    up to ``max_rounds``. The contenders' cost models are refit with their level at the target
    length set from the paired gaps, so that the profile ranks them as the confirmation did.
    ``evaluations`` is updated in place.
    """
    contenders = close_to_best(evaluations, measurer.settings.target_duration, within)[:top]
    if len(contenders) < 2 or max_rounds < 1:
        return Confirmation([], {}, 0)
    return confirm_contenders(measurer, contenders, evaluations, min_rounds, max_rounds)


def close_to_best(evaluations: dict[RunConfig, Evaluation], target: float,
                  within: float = CONFIRM_MARGIN) -> list[RunConfig]:
    """Valid configurations predicted within the fraction ``within`` of the best, or differing
    from it by less than the larger of their uncertainties; fastest first."""
    valid = sorted(((e.config, e.cost) for e in evaluations.values()
                    if e.objective is not None and e.feasible and e.cost is not None),
                   key=lambda pair: pair[1].predict(target))
    if not valid:
        return []
    best = valid[0][1]
    return [config for config, cost in valid
            if cost.predict(target) <= best.predict(target) * (1 + within)
            or cost.tied_with(best, target)]


def confirm_contenders(measurer: Remeasurer, contenders: list[RunConfig],
                       evaluations: dict[RunConfig, Evaluation], min_rounds: int,
                       max_rounds: int) -> Confirmation:
    """The rounds of :func:`confirm_finalists` on these (measured, valid) ``contenders``."""
    measurer.announce_confirmation(contenders)
    searched = {c: evaluations[c].objective for c in contenders}
    measurer.check_load()
    rounds = _run_rounds(measurer, contenders, min_rounds, max_rounds)
    survivors = [c for c in contenders
                 if c in rounds[0] and all(r.ok for r in measurer.results[c])]
    for config in contenders:
        if config not in survivors:  # crashed once: not a configuration to rely on
            failed = next((r for r in measurer.results[config] if not r.ok), None)
            reason = (f"{failed.status} while being confirmed: {failed.error}" if failed
                      else "gave no timing while being confirmed")
            evaluations[config] = Evaluation(config, None, reason=reason)
    if len(survivors) < 2:
        return Confirmation(survivors, {}, len(rounds))
    first, gaps = rank(rounds, survivors)
    base = searched[first]
    assert base is not None
    _set_levels(measurer, evaluations, base, first, gaps)
    logger.info("confirmation, %d rounds: %s", len(rounds), ", ".join(
        f"{g.config.key} ×{g.ratio:.3f} [{g.low:.3f}, {g.high:.3f}]" for g in gaps))
    return Confirmation([first, *(g.config for g in gaps)], {g.config: g for g in gaps},
                        len(rounds))


def _run_rounds(measurer: Remeasurer, contenders: list[RunConfig], min_rounds: int,
                max_rounds: int) -> list[dict[RunConfig, float]]:
    rounds: list[dict[RunConfig, float]] = []
    active = list(contenders)
    for number in range(max_rounds):
        shift = number % len(active)  # rotate, so no contender always runs first
        rounds.append(_confirm_round(measurer, active[shift:] + active[:shift]))
        active = [c for c in active if c in rounds[-1]]
        if len(rounds) >= min_rounds and len(active) >= 2:
            first, gaps = rank(rounds, active)
            active = [first, *(g.config for g in gaps
                               if not g.resolved(measurer.settings.noise_target))]
        if len(active) < 2:
            break
    return rounds


def _confirm_round(measurer: Remeasurer, order: list[RunConfig]) -> dict[RunConfig, float]:
    """Run each configuration once; their estimates of a target-length run."""
    estimates_now: dict[RunConfig, float] = {}
    for config in order:
        result = measurer.confirmation_trial(config)
        guesses = (estimates([result], measurer.settings.target_duration) if result.ok
                   else [])
        if guesses:
            estimates_now[config] = guesses[0]
        else:
            logger.warning("%s failed while being confirmed: %s", config.key, result.error)
    return estimates_now


def _set_levels(measurer: Remeasurer, evaluations: dict[RunConfig, Evaluation], base: float,
                first: RunConfig, gaps: list[Gap[RunConfig]]) -> None:
    """Refit the contenders; their target-length predictions are set at ``base`` (the
    leader's prediction from the search) times their paired gap, so drift between the search's
    measurements of each no longer decides their order: by the fixed part, within the band its
    set-up family shares, the rest by the rate (:func:`~autotune.costmodel.at_level`).

    The search's level, not the confirmation window's: configurations left out of the
    confirmation were all predicted no faster than every contender by the search, which stays
    true for the leader only on the same footing.
    """
    target = measurer.settings.target_duration
    ratios = {first: 1.0, **{g.config: g.ratio for g in gaps if math.isfinite(g.ratio)}}
    shared = _family_fixed(evaluations)
    for config, ratio in ratios.items():
        evaluation = measurer.refit(config)
        assert evaluation.cost is not None
        cost = at_level(evaluation.cost, base * ratio, target, shared.get(config.set_up_family))
        evaluations[config] = replace(evaluation, objective=cost.predict(target), cost=cost)


def _family_fixed(evaluations: Mapping[RunConfig, Evaluation]) -> dict[Any, float]:
    return shared_fixed({c: e.cost for c, e in evaluations.items() if e.cost is not None},
                        lambda config: config.set_up_family)


def share_fixed_parts(evaluations: dict[RunConfig, Evaluation], target: float) -> None:
    """Bring every measured configuration's fixed part within the band around the one its
    set-up family shares (:func:`~autotune.costmodel.within_shared_fixed`), in place, before
    the finalists are chosen and confirmed."""
    shared = _family_fixed(evaluations)
    for config, evaluation in evaluations.items():
        if evaluation.cost is None:
            continue
        cost = within_shared_fixed(evaluation.cost, shared[config.set_up_family])
        objective = cost.predict(target) if evaluation.objective is not None else None
        evaluations[config] = replace(evaluation, cost=cost, objective=objective)
