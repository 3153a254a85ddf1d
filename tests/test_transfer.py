"""Predicting a never-calibrated model from the host's suite: the fit, the choice it leads to,
and a real first run of a script through the command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from autotune.choice import choose
from autotune.config import RunConfig, standalone_config
from autotune.costmodel import CostModel
from autotune.drypass import cache_file
from autotune.features import ModelFeatures
from autotune.host import HostFingerprint
from autotune.profile import Profile, ProfileEntry
from autotune.store import open_store
from autotune.transfer import fit_non_negative, members_of, predicted_profile
from autotune.workloads import resolve_workload
from tests.conftest import run_cli
from tests.helpers import make_host
from tests.test_learned import TINY

NUMPY = RunConfig("runtime", "numpy")
T0, T2 = standalone_config(0), standalone_config(2)
T0_FLOAT32 = standalone_config(0, "float32")

#: Each configuration's true costs: rate per (operation, synapse, object), fixed
#: (constant, per synapse, per object). Standalone with 2 threads integrates equations
#: twice as fast and delivers synapse events slower than without OpenMP.
TRUTH = {
    NUMPY: ((1e-4, 2e-6, 0.02), (1.5, 1e-5, 0.0)),
    T0: ((1e-5, 5e-7, 0.001), (3.5, 0.0, 0.0)),
    T2: ((0.5e-5, 8e-7, 0.003), (3.6, 0.0, 0.0)),
    T0_FLOAT32: ((0.9e-5, 4.5e-7, 0.001), (3.5, 0.0, 0.0)),
}
def _model(neurons: int, operations: int, synapses: int, plastic: int, objects: int
           ) -> ModelFeatures:
    return ModelFeatures(neurons, neurons, operations, synapses, plastic, objects)


SUITE = {("cuba", 1000): _model(1000, 3000, 80000, 0, 6),
         ("coba-hh", 250): _model(250, 1500, 5000, 0, 5),
         ("stdp", 1000): _model(1001, 1002, 1000, 1000, 7)}


def _true_cost(config: RunConfig, f: ModelFeatures) -> CostModel:
    (a, b, c), (d, e, g) = TRUTH[config]
    rate = a * f.operations + b * f.synapses + c * f.objects
    return CostModel(d + e * f.synapses + g * f.objects, rate, 0.01, 4, 2,
                     8.0 if config.device == "cpp_standalone" else 0.0, None, 0.02)


def _member(host: HostFingerprint, name: str, size: int, features: ModelFeatures) -> Profile:
    entries = tuple(ProfileEntry(config, "valid", _true_cost(config, features))
                    for config in TRUTH)
    workload = resolve_workload(name, size).to_dict() | {"model": features.to_dict()}
    return Profile(host.fingerprint, dict(host.components), workload, 10.0, 0.05, entries,
                   created_at="2026-11-30T00:00:00+00:00", calibration_id=1)


def suite_profiles(host: HostFingerprint) -> list[Profile]:
    return [_member(host, name, size, f) for (name, size), f in SUITE.items()]


def test_the_fit_recovers_exact_non_negative_coefficients() -> None:
    xs = [[3000, 80000, 6], [1500, 5000, 5], [1002, 1000, 7], [12000, 320000, 6]]
    ys = [1e-4 * x[0] + 2e-6 * x[1] + 0.02 * x[2] for x in xs]
    coefficients, error = fit_non_negative(xs, ys)
    assert coefficients == pytest.approx([1e-4, 2e-6, 0.02], rel=1e-6)
    assert error == pytest.approx(0.0, abs=1e-9)


def test_the_fit_never_gives_a_negative_coefficient() -> None:
    # y falls with the second feature: a least-squares fit would give it a negative weight
    coefficients, error = fit_non_negative([[1, 1], [2, 1], [3, 10]], [1.0, 2.0, 2.5])
    assert min(coefficients) >= 0 and error > 0


def test_a_model_outside_the_suite_is_predicted_from_its_features() -> None:
    host = make_host()
    heavy_neurons = _model(4000, 24000, 8000, 0, 5)  # Hodgkin-Huxley-like
    profile = predicted_profile(members_of(suite_profiles(host)), heavy_neurons)
    assert profile is not None and profile.workload["kind"] == "prediction"
    for config in TRUTH:
        cost = profile.entry(config).cost  # type: ignore[union-attr]
        truth = _true_cost(config, heavy_neurons)
        assert cost.rate == pytest.approx(truth.rate, rel=1e-6)
        assert cost.fixed == pytest.approx(truth.fixed, rel=1e-6)
        assert cost.cold_extra == pytest.approx(truth.cold_extra, rel=1e-6)


def test_the_choice_flips_with_the_model_and_stays_float64_unless_checked() -> None:
    host = make_host()
    members = members_of(suite_profiles(host))
    by_neurons = predicted_profile(members, _model(4000, 24000, 8000, 0, 5))
    by_synapses = predicted_profile(members, _model(4000, 12000, 640000, 0, 6))
    config, source, reason, predicted = choose(host, by_neurons, duration=100.0,
                                               float32_ok=False)
    assert (config, source) == (T2, "suite")
    assert "4000 neurons, 8000 synapses" in reason and "cuba 1000" in reason
    assert predicted == pytest.approx(_true_cost(T2, _model(4000, 24000, 8000, 0, 5))
                                      .predict(100.0), rel=1e-6)
    config, _, reason, _ = choose(host, by_synapses, duration=100.0, float32_ok=False)
    assert config == T0  # float32 would be faster, but was not checked on this model
    assert "float64, since float32 was validated on the suite's models" in reason
    config, _, _, _ = choose(host, by_synapses, duration=100.0, float32_ok=True)
    assert config == T0_FLOAT32  # checked on this script: float32 may win


def test_no_prediction_without_two_different_models() -> None:
    host = make_host()
    cuba = [_member(host, "cuba", 1000, SUITE[("cuba", 1000)]),
            _member(host, "cuba", 4000, _model(4000, 12000, 320000, 0, 6))]
    assert predicted_profile(members_of(cuba), _model(10, 10, 10, 0, 3)) is None
    without_features = [Profile.from_dict({**p.to_dict(), "workload": {
        k: v for k, v in p.workload.items() if k != "model"}}) for p in suite_profiles(host)]
    assert members_of(without_features) == []
    older = [Profile.from_dict({**p.to_dict(), "workload": {**p.workload, "model": {
        k: v for k, v in p.workload["model"].items() if k != "operations"}}})
        for p in suite_profiles(host)]  # loads (show keeps working), but serves no prediction
    assert members_of(older) == []
    current = suite_profiles(host)  # the suite read them again: same workloads, same time
    for mixed in ([*older, *current], [*current, *older]):
        assert [m.profile for m in members_of(mixed)] == current


def test_a_profile_with_hostile_features_is_refused() -> None:
    host = make_host()
    document = suite_profiles(host)[0].to_dict()
    document["workload"]["model"]["synapses"] = -5
    with pytest.raises(Exception, match="model feature synapses"):
        Profile.from_dict(document)




def test_a_script_never_calibrated_gets_a_suite_prediction_on_its_first_run(
        db_url: str, tmp_path: Path) -> None:
    """Real runs through the command line into a real SQLite store holding a suite: the first
    run is predicted from the script's dry pass (float64: float32 was not checked on it), the
    dry pass is cached, and the second run uses the first one's own times."""
    from autotune.host import collect_host

    host = collect_host()
    with open_store(db_url) as store:
        for profile in suite_profiles(host):
            store.save_profile(profile)
    script = tmp_path / "mine.py"
    script.write_text(TINY)
    cache = tmp_path / "cache"
    env = {"BRIAN2_AUTOTUNE_CACHE": str(cache)}
    first = run_cli("run", "--db", db_url, str(script), env=env)
    assert first.returncode == 0, first.stderr
    assert "done" in first.stdout and "dry pass of" in first.stderr
    digest = sqlite3.connect(db_url.removeprefix("sqlite:///")).execute(
        "SELECT script_digest FROM autotune_runs").fetchone()[0]
    cached = json.loads(cache_file(cache, digest, []).read_text())
    assert cached["neurons"] == 20 and cached["synapses"] > 0
    second = run_cli("run", "--db", db_url, str(script), env=env)
    assert second.returncode == 0, second.stderr
    assert "dry pass of" not in second.stderr  # paid once per text and arguments
    with open_store(db_url) as store:
        runs = store.runs()
    assert [r.source for r in runs] == ["suite", "script"]
    assert runs[0].config_key == "numpy-float64"  # a 50 ms run: no build pays back
    assert runs[0].predicted_total == pytest.approx(
        _true_cost(NUMPY, ModelFeatures.from_dict(cached)).predict(0.05), rel=0.05)


def _threads_member(host: HostFingerprint, name: str, size: int, features: ModelFeatures,
                    t0_rate: float) -> Profile:
    """A member whose 2-thread loop is 0.47 of its single-thread one plus 0.025 s per object
    (the relation fit on this VM's suite)."""
    t2_rate = 0.47 * t0_rate + 0.025 * features.objects
    entries = (ProfileEntry(T0, "valid", CostModel(3.5, t0_rate, 0.01, 4, 2, 8.0)),
               ProfileEntry(T2, "valid", CostModel(3.6, t2_rate, 0.01, 4, 2, 8.0)))
    workload = resolve_workload(name, size).to_dict() | {"model": features.to_dict()}
    return Profile(host.fingerprint, dict(host.components), workload, 10.0, 0.05, entries,
                   created_at="2026-11-30T00:00:00+00:00", calibration_id=1)


def test_one_measured_thread_count_corrects_the_prediction_of_the_other() -> None:
    """A CUBA-like script predicted (wrongly) to gain from 2 threads: its first run, with 2
    threads, measures a loop the synchronisation alone nearly explains, so the suite's loop
    relation puts the single-thread loop far below it and the next run tries it, where
    scaling every prediction by one factor would have kept the wrong ranking."""
    from autotune.learned import learn
    from autotune.runrecord import RunRecord
    from autotune.transfer import loop_relations

    host = make_host()
    members = members_of([
        _threads_member(host, "coba-hh", 100, _model(100, 10500, 8000, 0, 5), 0.17),
        _threads_member(host, "coba-hh", 400, _model(400, 42000, 32000, 0, 5), 1.04),
        _threads_member(host, "stdp", 1000, _model(1001, 1007, 1000, 1000, 7), 0.07)])
    script = _model(1000, 10000, 80000, 0, 6)
    relation = loop_relations(members, script)[T2.key]
    assert (relation.base, relation.objects) == (T0.key, 6)
    assert (relation.factor, relation.per_object) == pytest.approx((0.47, 0.025), rel=1e-6)
    profile = predicted_profile(members, script)
    config, source, _, _ = choose(host, profile, duration=100.0, float32_ok=False)
    assert (config, source) == (T2, "suite")  # the features overrate this model's loop
    first = RunRecord(host.fingerprint, None, None, T2.key, "suite", "s.py", 100.0, None, None,
                      5.0 + 16.9, 5.0, 16.9, None, 0, "2026-11-30T00:00:00+00:00",
                      script_digest="d", cold=False)
    relations = loop_relations(members, script)
    config, source, reason, predicted = choose(host, profile, duration=100.0,
                                               float32_ok=False, history=learn([first]),
                                               relations=relations)
    assert (config, source) == (T0, "script") and "thread count" in reason
    single = (0.169 - 0.025 * 6) / 0.47
    assert predicted == pytest.approx(5.0 * 3.5 / 3.6 + single * 100, rel=0.02)
    config, _, _, _ = choose(host, profile, duration=100.0, float32_ok=False,
                             history=learn([first]))
    assert config == T2  # without the relation one scale factor keeps the wrong ranking
