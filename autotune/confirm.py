"""Paired comparison of the top configurations, from interleaved confirmation rounds.

After the search, the configurations closest to the best are run again in rounds: each round runs
every remaining contender once, back to back, so the runs of one round share the machine's state.
Comparing two contenders round by round (the log of the ratio of their estimates of a full run
in the same round) cancels the drift that spans rounds, which on a shared host is larger than
the differences the confirmation has to resolve (the search measured each configuration minutes
apart). Each contender's gap to the leader is the mean of those paired log ratios, with a
Student-t interval over the rounds.

A gap is *resolved* once its interval's lower end reaches ``1 / (1 + margin)``: then, with 90 %
confidence, the contender is no more than ``margin`` faster than the leader, so choosing the
leader loses at most the noise target, whatever more rounds would say (a contender whose
interval lies wholly above 1 is also *slower* than the leader). Unresolved contenders run
further rounds, up to a limit.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

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
