"""The paired statistics of the confirmation rounds (autotune.confirm)."""

from __future__ import annotations

import math

import pytest

from autotune import confirm as paired

#: Estimates of a 10 s CUBA 4000 run (seconds) from the confirmation rounds of a real calibration
#: on the 2-CPU development host: standalone float32 (default flags), float32 with -O3 unrolling,
#: float64 with -O3 unrolling (``costmodel.estimates`` of each confirmation trial).
MEASURED = [{"f32": 4.921, "f32-unroll": 4.212, "f64-unroll": 5.207},
            {"f32": 4.452, "f32-unroll": 4.598, "f64-unroll": 4.194}]


def test_drift_shared_by_a_round_cancels() -> None:
    """A contender 10 % slower in every round is resolved as slower after two rounds, although
    the host slowed down by 30 % between them (unpaired medians would overlap)."""
    rounds = [{"a": 4.0, "b": 4.4}, {"a": 5.2, "b": 5.72}]
    first, gaps = paired.rank(rounds, ["a", "b"])
    assert first == "a"
    (gap,) = gaps
    assert gap.ratio == pytest.approx(1.1) and gap.slower and gap.resolved(0.05)
    assert gap.low == pytest.approx(1.1) == gap.high  # no scatter left after pairing


def test_one_round_says_nothing_about_noise() -> None:
    gap = paired.gap([{"a": 4.0, "b": 4.4}], "b", "a")
    assert gap.rounds == 1 and gap.high == math.inf and not gap.resolved(0.05)
    assert gap.to_dict()["high"] is None


def test_real_rounds_leave_the_top_unresolved() -> None:
    """Two real rounds whose paired ratios disagree (f32-unroll 14 % faster than f32 in one,
    3 % slower in the other) cannot separate the leader from the rest: the confirmation must
    go on."""
    first, gaps = paired.rank(MEASURED, ["f32", "f32-unroll", "f64-unroll"])
    assert first == "f32-unroll"
    assert [g.config for g in gaps] == ["f64-unroll", "f32"]
    assert all(g.rounds == 2 and g.low < 1 < g.high for g in gaps)
    assert not any(g.resolved(0.05) for g in gaps)


def test_a_gap_is_resolved_once_the_contender_cannot_be_much_faster() -> None:
    """Four noisy rounds around a 1 % gap: not slower beyond the noise, but with 90 %
    confidence at most 5 % faster than the leader, so the leader is a safe choice."""
    rounds = [{"a": 4.00, "b": 4.08}, {"a": 4.50, "b": 4.48}, {"a": 4.20, "b": 4.25},
              {"a": 4.80, "b": 4.78}]
    gap = paired.gap(rounds, "b", "a")
    assert 1.0 < gap.ratio < 1.02 and gap.low < 1 and not gap.slower
    assert gap.resolved(0.05) and not gap.resolved(0.001)
    disagreeing = [{"a": 4.0, "b": 4.4}, {"a": 4.4, "b": 4.0}]  # ±10 %: b may be much faster
    assert not paired.gap(disagreeing, "b", "a").resolved(0.05)


def test_the_leader_is_found_against_all_others() -> None:
    rounds = [{"a": 5.0, "b": 4.0, "c": 4.6}, {"a": 5.5, "b": 4.3, "c": 4.9}]
    first, gaps = paired.rank(rounds, ["a", "b", "c"])
    assert first == "b" and [g.config for g in gaps] == ["c", "a"]
