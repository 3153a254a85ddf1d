"""Non-negative least squares over a handful of features, in pure Python.

:mod:`autotune.transfer` fits a configuration's costs as non-negative combinations of a
model's features (:mod:`autotune.features`), weighted for relative error, from a suite of a few
calibrated models, before every run of a never-calibrated script: no numpy (its import alone
would cost more than :func:`autotune.apply` may take). With at most a handful of features, the
fit is exhaustive over which coefficients are free, so the answer is the exact optimum.

Which features a fit may use matters more than its error on the points it fits. With a few
models, each with a kind of work no other has (the Hodgkin-Huxley network's exponentials, the
synfire chain's noise, STDP's plastic synapses), the fit with the least error on them can
price only those kinds and give a model that has none of them no loop at all: left without
CUBA, the sixth suite predicted CUBA's loop as 0 seconds, and numpy was chosen for it, 11 times
slower than its best at 100 s. :func:`fit_held_out` therefore first predicts each model from
the others, as the fit will have to predict a model it has never seen, and takes the least
error on all models only among the choices of features that do that well
(:data:`HELD_OUT_MARGIN`). Once STDP's Poisson draws were counted as random draws like the
synfire chain's noise, every member but CUBA had a kind of work another member shares, and
held-out prediction without CUBA again chose kinds that gave it no loop: the chosen fit must
also price a kind of work every model has (``general``), where some fit does.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

#: :func:`fit_held_out` chooses the features by leaving each model out once there are at least
#: this many models (with two, each would be predicted from one model's sizes alone, which
#: grow together and cannot tell the features apart).
HELD_OUT_MODELS = 3
#: A held-out prediction below this fraction of the measured value counts as this fraction:
#: predicting no work at all is a large, finite error (its logarithm, squared, is 48).
HELD_OUT_FLOOR = 1e-3
#: How much worse (root mean square of the log ratio: 0.69 is a factor 2) than the best
#: choice's a choice of features may predict the held-out models and still be taken for its
#: smaller error on all of them. Choosing on held-out error alone mispredicts more often
#: (200 random suites like the built-in one, activity the features miss of up to 1.5 times
#: either way: median error 2.7 times against 1.6); least error alone predicts 18 % of the
#: left-out models more than 20 times off, most at 0, against 1 % (``benchmarks/
#: feature_choice.py``).
HELD_OUT_MARGIN = math.log(2)
#: How much less error a fit with more free coefficients must have to be preferred.
_TIE = 1e-9


@dataclass(frozen=True)
class Fit:
    """Non-negative coefficients of the features, the fit's root mean square relative error on
    the points it fit (0.2 = 20 %), and the indices of the features it was allowed to use."""

    coefficients: tuple[float, ...]
    error: float
    allowed: tuple[int, ...]


@dataclass(frozen=True)
class _Subset:
    """The best fit that uses only some features: its sum of squared relative errors, the
    features it gives a coefficient and those coefficients (of the column-scaled rows)."""

    squared_error: float
    free: tuple[int, ...]
    coefficients: tuple[float, ...]


def fit_non_negative(xs: Sequence[Sequence[float]], ys: Sequence[float],
                     allowed: Sequence[int] | None = None) -> tuple[list[float], float]:
    """Non-negative coefficients ``c`` minimising the relative error of ``x · c`` against
    ``y``, using only the features ``allowed`` (all when None); and that error's root mean
    square. Fewer free coefficients are preferred on equal error."""
    fit = fit_allowed(xs, ys, allowed)
    return list(fit.coefficients), fit.error


def fit_allowed(xs: Sequence[Sequence[float]], ys: Sequence[float],
                allowed: Sequence[int] | None = None) -> Fit:
    """:func:`fit_non_negative` as a :class:`Fit`."""
    n = len(xs[0])
    mask = _mask(allowed, n)
    scale = _column_scale(xs, n)
    rows = _weighted(xs, ys, scale)
    return _as_fit(_subset_fits(rows, n, mask)[mask], scale, mask, len(rows))


def fit_held_out(xs: Sequence[Sequence[float]], ys: Sequence[float],
                 groups: Sequence[Hashable], allowed: Sequence[int] | None = None,
                 margin: float = HELD_OUT_MARGIN, general: Sequence[int] = ()) -> Fit:
    """As :func:`fit_non_negative`, on features chosen by predicting each group of points (one
    model, at all its sizes) from the others: of the choices whose held-out predictions are
    within ``margin`` of the best (root mean square log error, each group weighing
    the same), the one with the least error on all the points (fewer features on a tie). With
    fewer than :data:`HELD_OUT_MODELS` groups, or with ``allowed`` given, it fits the features
    ``allowed`` (all when None) as they stand.

    ``general``: features every model has. Where some choices give one of them a positive
    coefficient, only those are considered: a fit that prices none of them gives a model
    with none of the others' kinds of work no cost at all, and held-out prediction cannot
    see that when every group has some kind of work of its own."""
    if allowed is not None or len(set(groups)) < HELD_OUT_MODELS:
        return fit_allowed(xs, ys, allowed)
    n = len(xs[0])
    scale = _column_scale(xs, n)
    rows = _weighted(xs, ys, scale)
    general_mask = _mask(general, n)
    scores = _held_out_scores(rows, groups, n, general_mask)
    everything = _subset_fits(rows, n, (1 << n) - 1, general_mask)
    pricing_general = {mask: score for mask, score in scores.items()
                       if _prices_any(everything[mask], general)}
    candidates = pricing_general or scores
    acceptable = min(candidates.values()) + margin
    chosen = min((mask for mask, score in candidates.items() if score <= acceptable),
                 key=lambda mask: (everything[mask].squared_error, mask.bit_count(), mask))
    return _as_fit(everything[chosen], scale, chosen, len(rows))


def _prices_any(subset: _Subset, features: Sequence[int]) -> bool:
    """Whether ``subset``'s fit gives any of ``features`` a positive coefficient."""
    return any(c > 0 for i, c in zip(subset.free, subset.coefficients, strict=True)
               if i in features)


def _held_out_scores(rows: Sequence[Sequence[float]], groups: Sequence[Hashable], n: int,
                     general: int = 0) -> dict[int, float]:
    """For every non-empty subset of the features, the root mean square log error of each
    group's points predicted by the fit on the other groups' (pricing ``general`` features
    where it can, as :func:`_subset_fits`), each group weighing the same."""
    names = list(dict.fromkeys(groups))
    squares = dict.fromkeys(_submasks((1 << n) - 1)[1:], 0.0)
    for name in names:
        train = [r for r, g in zip(rows, groups, strict=True) if g != name]
        held = [r for r, g in zip(rows, groups, strict=True) if g == name]
        fits = _subset_fits(train, n, (1 << n) - 1, general)
        for mask in squares:
            squares[mask] += _held_out_error(held, fits[mask]) / len(names)
    return {mask: math.sqrt(total) for mask, total in squares.items()}


def _as_fit(subset: _Subset, scale: Sequence[float], allowed: int, points: int) -> Fit:
    """``subset`` (a fit of the column-scaled rows of ``points`` points) in the features' own
    units."""
    full = [0.0] * len(scale)
    for i, c in zip(subset.free, subset.coefficients, strict=True):
        full[i] = c / scale[i]
    return Fit(tuple(full), math.sqrt(subset.squared_error / points), _bits(allowed))


def _mask(allowed: Sequence[int] | None, n: int) -> int:
    return (1 << n) - 1 if allowed is None else sum(1 << i for i in set(allowed))


def _bits(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


def _submasks(mask: int) -> list[int]:
    """Every subset of ``mask`` (the empty one included), fewest members first."""
    return sorted((m for m in range(mask + 1) if m & ~mask == 0),
                  key=lambda m: (m.bit_count(), m))


def _column_scale(xs: Sequence[Sequence[float]], n: int) -> list[float]:
    return [max((abs(x[i]) for x in xs), default=0.0) or 1.0 for i in range(n)]


def _weighted(xs: Sequence[Sequence[float]], ys: Sequence[float], scale: Sequence[float]
              ) -> list[list[float]]:
    """Each point's features over its measured value (so that fitting 1 fits relative
    error), column-scaled."""
    return [[x[i] / scale[i] / y for i in range(len(scale))] for x, y in zip(xs, ys, strict=True)]


def _subset_fits(rows: Sequence[Sequence[float]], n: int, allowed: int, general: int = 0
                 ) -> dict[int, _Subset]:
    """For every subset of the ``allowed`` features, the exact non-negative least-squares fit
    of ``rows · c = 1`` using only them: the unconstrained fit where its coefficients are all
    non-negative and it beats every smaller subset's, that best smaller one otherwise. Each
    subset's normal equations are read from one Gram matrix.

    With ``general`` (a mask of features), a subset's fit is the best of those that give one
    of them a coefficient, where any does: without them a fit on models that each have a
    kind of work of their own prices only those kinds, and predicts no work at all for a
    model that has none of them."""
    gram = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    sums = [sum(r[i] for r in rows) for i in range(n)]
    fits = {0: _Subset(float(len(rows)), (), ())}
    pricing: dict[int, _Subset | None] = {0: None}  # the best that prices a general feature
    for mask in _submasks(allowed)[1:]:
        free = _bits(mask)
        smaller = _simplest([fits[mask & ~(1 << i)] for i in free])
        fits[mask] = smaller
        below = [f for i in free if (f := pricing[mask & ~(1 << i)]) is not None]
        pricing[mask] = _simplest(below) if below else None
        own = _unconstrained(gram, sums, free, len(rows))
        if own is None:
            continue
        if own.squared_error < smaller.squared_error - _TIE:
            fits[mask] = own
        if mask & general and (pricing[mask] is None
                               or own.squared_error < pricing[mask].squared_error - _TIE):
            pricing[mask] = own
    return {mask: pricing.get(mask) or fit for mask, fit in fits.items()}


def _unconstrained(gram: Sequence[Sequence[float]], sums: Sequence[float],
                   free: tuple[int, ...], points: int) -> _Subset | None:
    """The least-squares fit on the features ``free`` alone, where it is unique and every
    coefficient is positive or zero (None otherwise)."""
    if len(free) > points:
        return None
    solution = _solve([[gram[i][j] for j in free] for i in free], [sums[i] for i in free])
    if solution is None or min(solution) < 0:
        return None
    # at the least-squares solution c·Gc = s·c, so the squared error is m - s·c
    squared_error = max(points - sum(sums[i] * c for i, c in zip(free, solution, strict=True)),
                        0.0)
    return _Subset(squared_error, free, tuple(solution))


def _simplest(fits: Sequence[_Subset]) -> _Subset:
    """The least error of ``fits``; on a tie, the fewest free coefficients, then the first
    features (as an exhaustive search in order would find)."""
    least = min(f.squared_error for f in fits)
    return min((f for f in fits if f.squared_error <= least + _TIE),
               key=lambda f: (len(f.free), f.free))


def _held_out_error(rows: Sequence[Sequence[float]], subset: _Subset) -> float:
    """The mean squared log ratio of ``subset``'s predictions to the measured values of
    ``rows`` (weighted rows: each one's prediction is that ratio)."""
    total = 0.0
    for row in rows:
        ratio = sum(row[i] * c for i, c in zip(subset.free, subset.coefficients, strict=True))
        total += math.log(max(ratio, HELD_OUT_FLOOR)) ** 2
    return total / len(rows)


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """``a x = b`` by Gaussian elimination with partial pivoting (small, column-scaled
    systems); None if singular."""
    n = len(b)
    a, b = [list(row) for row in a], list(b)
    for col in range(n):
        pivot = max(range(col, n), key=lambda k: abs(a[k][col]))
        if abs(a[pivot][col]) < 1e-12:
            return None
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for k in range(col + 1, n):
            factor = a[k][col] / a[col][col]
            a[k] = [x - factor * y for x, y in zip(a[k], a[col], strict=True)]
            b[k] -= factor * b[col]
    solution = [0.0] * n
    for col in reversed(range(n)):
        rest = sum(a[col][k] * solution[k] for k in range(col + 1, n))
        solution[col] = (b[col] - rest) / a[col][col]
    return solution
