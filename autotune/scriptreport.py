"""Tables and JSON for what was learned per script: its own runs (``show``) and its float32
checks (``check-precision``, ``show``). Pure formatting, like :mod:`autotune.report`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autotune.profile import Profile
from autotune.records import PrecisionCheck
from autotune.report import _fmt, _fmt_seconds, _percent, _table
from autotune.runrecord import RunRecord


def script_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """What was learned per script (by the hash of its text) and model size from its own
    runs (a script whose size comes from an argument or the environment builds several:
    :func:`autotune.learned.by_size`): one row per configuration it ran, its fastest (for its
    newest run's length) first."""
    from autotune.learned import by_size

    by_script: dict[str, list[RunRecord]] = {}
    for run in runs:
        if run.script_digest:
            by_script.setdefault(run.script_digest, []).append(run)
    rows = []
    for digest, all_runs in by_script.items():
        for own_runs in by_size(all_runs):
            rows += _rows_of(digest, own_runs)
    return rows


def _rows_of(digest: str, own_runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """The rows of :func:`script_rows` for one script's runs of one model size."""
    from autotune.learned import learn

    newest = own_runs[-1]
    length = newest.simulated or 1.0
    learned = sorted(learn(own_runs).values(), key=lambda t: t.predict(length))
    rows = []
    for rank, times in enumerate(learned, 1):
        shared = sum(1 for r in own_runs if r.config_key == times.config_key
                     and r.times_alone() is None and r.crowded)
        rows.append({
            "script": newest.script, "digest": digest, "rank": rank,
            "config": times.config_key, "runs": times.runs, "warm_runs": times.warm_runs,
            "crowded_runs": shared,
            "set_up_s": times.warm_build(0.0), "rate_s_per_s": times.rate, "simulated_s": length,
            "predicted_s": times.predict(length), "neurons": newest.neurons,
            "synapses": newest.synapses})
    return rows


def scripts_renderable(rows: Sequence[dict[str, Any]]) -> Any:
    """The table of :func:`script_rows` (None when no script was learned from)."""
    if not rows:
        return None
    return _table("learned from your scripts' own runs (fastest first, for each one's newest "
                  "run length)",
                  ["script", "configuration", "runs (warm)", "set-up", "per sim. s",
                   "predicted", "neurons", "synapses"],
                  [[_script_name(r["script"], r["digest"]) if r["rank"] == 1 else "",
                    r["config"], _runs_cell(r), _fmt_seconds(r["set_up_s"]),
                    _fmt(r["rate_s_per_s"], ".3g", " s"),
                    f"{_fmt_seconds(r['predicted_s'])} for {r['simulated_s']:g} s",
                    _fmt(r["neurons"], "d", ""), _fmt(r["synapses"], "d", "")] for r in rows])


def _runs_cell(row: dict[str, Any]) -> str:
    """``3 (2)``: runs learned from (warm ones); ``+1 crowded`` for runs that shared their CPUs
    and were not learned from."""
    cell = f"{row['runs']} ({row['warm_runs']})"
    return cell + (f" +{row['crowded_runs']} crowded" if row["crowded_runs"] else "")


def _script_name(path: str | None, digest: str) -> str:
    name = path.rsplit("/", 1)[-1] if path else "(interactive)"
    return f"{name} [{digest[:8]}]"


def precision_check_renderables(check: PrecisionCheck) -> list[Any]:
    """The verdict of ``check-precision`` in one line, then each observable in both
    precisions."""
    name = check.script.rsplit("/", 1)[-1]
    if check.passed:
        head = (f"float32 passed on {name} ({check.config_key}): every observable within "
                f"{100 * check.tolerance:g} % of float64; run and apply() may now use float32 "
                "for this script's current text")
    else:
        head = (f"float32 refused for {name}: {check.reason}; run and apply() keep it in "
                "float64")
    rows = [[observable, _fmt(f64, ".6g"), _fmt(f32, ".6g"),
             _percent(f32 / f64) if f64 and f32 is not None else "-"]
            for observable, (f64, f32) in check.observables.items()]
    return [head, _table("observables", ["observable", "float64", "float32", "float32 vs 64"],
                         rows)]


def precision_check_rows(checks: Sequence[PrecisionCheck]) -> list[dict[str, Any]]:
    """The newest float32 check of each script text, newest first."""
    newest: dict[str, PrecisionCheck] = {}
    for check in checks:
        newest[check.script_digest] = check
    return [{"script": c.script, "digest": c.script_digest, "passed": c.passed,
             "config": c.config_key, "max_deviation": c.max_deviation, "reason": c.reason,
             "tolerance": c.tolerance, "created_at": c.created_at}
            for c in sorted(newest.values(), key=lambda c: c.created_at, reverse=True)]


def precision_checks_renderable(rows: Sequence[dict[str, Any]]) -> Any:
    """The table of :func:`precision_check_rows` (None when no script was checked)."""
    if not rows:
        return None
    return _table("float32 checks of your scripts (check-precision)",
                  ["script", "float32", "largest deviation", "configuration", "checked"],
                  [[_script_name(r["script"], r["digest"]),
                    "allowed" if r["passed"] else "refused",
                    _fmt(r["max_deviation"] and 100 * r["max_deviation"], ".2g", " %"),
                    r["config"], r["created_at"]] for r in rows])


def suite_summary(profiles: Sequence[Profile]) -> dict[str, Any]:
    """The host's suite for models never calibrated (:mod:`autotune.transfer`): its members
    with their features, whether it can predict (at least two different models), and the
    members of the built-in suite (:data:`autotune.suite.SUITE`) it lacks."""
    from autotune.suite import SUITE
    from autotune.transfer import members_of, suite_ready

    members = members_of(profiles)
    names = {m.name for m in members}
    return {"ready": suite_ready(members),
            "members": [{"workload": m.name, **m.features.to_dict()} for m in members],
            "missing": [f"{name} {size}" for name, size in SUITE
                        if f"{name} {size}" not in names]}


def suite_line(summary: dict[str, Any]) -> str:
    """One line for ``show``: what scripts never calibrated are predicted from, or how to
    make that possible."""
    names = ", ".join(m["workload"] for m in summary["members"])
    if summary["ready"]:
        line = (f"scripts never calibrated are predicted for their own model from this host's "
                f"calibrations of {names}")
        if missing := summary["missing"]:
            # a suite calibrated before a member was added to the built-in one
            line += (f"; the built-in suite also has {', '.join(missing)}, not calibrated here: "
                     "`brian2-autotune calibrate --suite` adds "
                     f"{'it' if len(missing) == 1 else 'them'} and keeps the rest")
        return line
    have = f" (only {names} so far)" if names else ""
    return ("scripts never calibrated get the newest profile's choice" + have + "; run "
            "`brian2-autotune calibrate --suite` to predict for each script's own model")
