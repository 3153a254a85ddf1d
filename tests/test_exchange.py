"""Moving profiles between machines, comparing them, and refusing hostile files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from autotune.config import RunConfig, standalone_config
from autotune.costmodel import CostModel
from autotune.errors import ProfileError
from autotune.exchange import build_export, parse_export
from autotune.profile import Profile, ProfileEntry
from autotune.store import open_store
from autotune.views import compare_rows, precision_rows, thread_scaling_rows
from tests.conftest import run_cli
from tests.helpers import make_host, make_profile

LAPTOP = make_host(cpus=4, cpu_model="Laptop CPU")
SERVER = make_host(cpus=16, cpu_model="Server CPU")


def _server_profile() -> Profile:
    base = make_profile(SERVER)
    entries = (*base.entries,
               ProfileEntry(standalone_config(8), "valid", CostModel(3.5, 0.02, 0.05, 3, 2)),
               ProfileEntry(standalone_config(16), "valid", CostModel(3.6, 0.015, 0.05, 3, 2)))
    return Profile.from_dict({**base.to_dict(), "entries": [e.to_dict() for e in entries]})


def _export_file(tmp_path: Path, host: object, profiles: list[Profile], name: str) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(build_export(host, profiles, [])))  # type: ignore[arg-type]
    return path


def _stores(tmp_path: Path) -> tuple[str, str]:
    laptop_db, server_db = (f"sqlite:///{tmp_path / n}" for n in ("laptop.db", "server.db"))
    with open_store(laptop_db) as store:
        store.save_profile(make_profile(LAPTOP), LAPTOP)
    with open_store(server_db) as store:
        store.save_profile(_server_profile(), SERVER)
    return laptop_db, server_db


def test_two_machines_compared_from_exported_files_alone(tmp_path: Path) -> None:
    laptop_db, server_db = _stores(tmp_path)
    out = tmp_path / ("server-" + "x" * 150 + ".json")  # longer than a pipe's 160 columns
    exported = run_cli("export", "--host", SERVER.fingerprint[:6], "-o", str(out), "--db",
                       server_db)
    assert exported.returncode == 0, exported.stderr
    assert f"exported 1 profile(s) of {SERVER.fingerprint} to {out}" in \
        exported.stdout.splitlines()
    document = json.loads(out.read_text())
    assert document["format_version"] == 1 and document["host"]["fingerprint"] == \
        SERVER.fingerprint
    imported = run_cli("import", str(out), "--json", "--db", laptop_db)
    assert json.loads(imported.stdout)["imported"][0]["added"] == 1
    result = run_cli("compare", "--json", "--duration", "100", "--reference",
                     LAPTOP.fingerprint, "--db", laptop_db)
    assert result.returncode == 0, result.stderr
    rows = {r["fingerprint"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows[SERVER.fingerprint]["best"] == standalone_config(16).key
    assert rows[LAPTOP.fingerprint]["best"] == standalone_config(0).key
    laptop_time = 3.5 + 0.1 * 100
    server_time = 3.6 + 0.015 * 100
    assert rows[SERVER.fingerprint]["relative_to_reference"] == pytest.approx(
        laptop_time / server_time)
    assert rows[SERVER.fingerprint]["throughput"] == pytest.approx(100 / server_time)
    assert rows[LAPTOP.fingerprint]["reference"] is True
    human = run_cli("compare", "--duration", "100", "--db", laptop_db)
    assert "vs reference" in human.stdout
    assert LAPTOP.fingerprint[:8] in human.stdout and SERVER.fingerprint[:8] in human.stdout


def test_reimporting_changes_nothing(tmp_path: Path) -> None:
    laptop_db, _ = _stores(tmp_path)
    path = _export_file(tmp_path, SERVER, [_server_profile()], "server.json")
    first = run_cli("import", str(path), "--db", laptop_db)
    assert first.returncode == 0, first.stderr
    db_file = tmp_path / "laptop.db"
    before = sqlite3.connect(db_file).execute(
        "SELECT count(*), max(id) FROM autotune_profiles").fetchone()
    again = run_cli("import", str(path), "--db", laptop_db)
    assert again.returncode == 0 and "already imported" in again.stdout
    after = sqlite3.connect(db_file).execute(
        "SELECT count(*), max(id) FROM autotune_profiles").fetchone()
    assert before == after


def _hostile(document: dict[str, object], mutate: str) -> dict[str, object]:
    doc = json.loads(json.dumps(document))
    entry = doc["profiles"][0]["entries"][0]
    if mutate == "plugin-flags":
        entry["config"]["flags"] = "-fplugin=/tmp/evil.so"
    elif mutate == "raw-flags":
        entry["config"]["compiler_flags"] = ["-O3", "-B/tmp"]
    elif mutate == "wrapper":
        entry["config"]["flags"] = "-wrapper gdb,--args"
    elif mutate == "shell":
        entry["config"]["flags"] = "default; rm -rf ~"
    elif mutate == "response-file":
        entry["config"]["flags"] = "@/etc/passwd"
    elif mutate == "threads":
        entry["config"]["device"], entry["config"]["target"] = "cpp_standalone", "cpp"
        entry["config"]["threads"] = 10**9
    elif mutate == "negative-cost":
        entry["cost"]["rate"] = -1
    elif mutate == "nan-cost":
        doc["profiles"][0]["target_duration"] = float("nan")
    elif mutate == "infinite-memory":
        doc["host"]["components"]["total_memory"] = float("inf")
    elif mutate == "infinite-cost":
        entry["cost"]["fixed"] = float("-inf")
    elif mutate == "unknown-key":
        doc["profiles"][0]["exec"] = "import os"
    elif mutate == "fingerprint":
        doc["host"]["components"]["usable_cpus"] = 1024
    elif mutate == "version":
        doc["format_version"] = 99
    elif mutate == "other-host":
        doc["profiles"][0]["fingerprint"] = "0" * 16
    return doc


@pytest.mark.parametrize("mutate, message", [
    ("plugin-flags", "unknown compiler-flag preset"), ("raw-flags", "unknown configuration keys"),
    ("wrapper", "unknown compiler-flag preset"), ("shell", "unknown compiler-flag preset"),
    ("response-file", "unknown compiler-flag preset"), ("threads", "between 0"),
    ("negative-cost", "must be a finite number"), ("nan-cost", "numbers must be finite"),
    ("infinite-memory", "numbers must be finite"), ("infinite-cost", "numbers must be finite"),
    ("unknown-key", "unknown keys: exec"), ("fingerprint", "does not match its components"),
    ("version", "export version 99"), ("other-host", "another host"),
])
def test_hostile_or_malformed_exports_are_refused_whole(tmp_path: Path, mutate: str,
                                                        message: str) -> None:
    laptop_db, _ = _stores(tmp_path)
    good = build_export(SERVER, [_server_profile()], [])
    with pytest.raises(ProfileError, match=message):
        parse_export(json.dumps(_hostile(good, mutate)))
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(_hostile(good, mutate)))
    db_file = tmp_path / "laptop.db"
    before = db_file.read_bytes()
    result = run_cli("import", str(path), "--db", laptop_db)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sqlite3.connect(db_file).execute("SELECT count(*) FROM autotune_profiles"
                                            ).fetchone()[0] == 1
    assert len(before) > 0


@pytest.mark.parametrize("content", [b"", b"{not json", b"[]", b'{"format": "other"}',
                                     b"\x00\xff" * 100, b"[" * 100000])
def test_garbage_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(content)
    result = run_cli("import", str(path), "--db", f"sqlite:///{tmp_path / 's.db'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_one_bad_file_imports_nothing(tmp_path: Path) -> None:
    good = _export_file(tmp_path, SERVER, [_server_profile()], "good.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = run_cli("import", str(good), str(bad), "--db", db)
    assert result.returncode == 2
    with open_store(db) as store:
        assert store.profiles() == []


def test_views_scaling_precision_and_compare_rows() -> None:
    server = _server_profile()
    scaling = thread_scaling_rows(server)
    assert [r["threads"] for r in scaling] == [0, 8, 16]
    assert scaling[1]["speedup"] == pytest.approx(0.1 / 0.02)
    assert scaling[1]["efficiency"] == pytest.approx(5 / 8)
    single = ProfileEntry(RunConfig("runtime", "cython", 0, "float32"), "invalid",
                          CostModel(3.0, 0.45), "rate differs by 9 %", 0.09)
    with_f32 = Profile.from_dict({**server.to_dict(), "entries": [
        *[e.to_dict() for e in server.entries], single.to_dict()]})
    rows = precision_rows(with_f32)
    assert rows[0]["float32_status"] == "invalid" and rows[0]["float32_deviation"] == 0.09
    assert rows[0]["float32_speedup"] == pytest.approx((3 + 5) / (3 + 4.5))
    hosts = {SERVER.fingerprint: {"info": {"hostname": "server"}}}
    compared = compare_rows([server], hosts, 10.0)
    assert compared[0]["host"].startswith("server (")


def test_plots_are_written(tmp_path: Path) -> None:
    from autotune.plots import plot_comparison, plot_profile

    profile_png = plot_profile(_server_profile(), tmp_path / "profile.png")
    hosts = {LAPTOP.fingerprint: {"info": {"hostname": "laptop"}},
             SERVER.fingerprint: {"info": {"hostname": "server"}}}
    rows = compare_rows([make_profile(LAPTOP), _server_profile()], hosts, 10.0)
    compare_png = plot_comparison(rows, tmp_path / "compare.png", 10.0)
    for png in (profile_png, compare_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_thread_scaling_compares_one_precision_and_flag_family() -> None:
    server = _server_profile()
    odd = ProfileEntry(standalone_config(4, "float32", "O2"), "valid", CostModel(3.0, 0.001))
    profile = Profile.from_dict({**server.to_dict(), "entries": [
        *[e.to_dict() for e in server.entries], odd.to_dict()]})
    rows = thread_scaling_rows(profile)
    assert {r["config"].split("-", 2)[2] for r in rows} == {"float64-default"}
