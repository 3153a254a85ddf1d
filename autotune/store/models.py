"""SQLAlchemy 2.0 models of the store.

Every table is prefixed ``autotune_`` because the Optuna study lives in the same database and owns
``studies``, ``trials``, ``trial_*``, ``version_info`` and ``alembic_version``; our Alembic history
uses its own version table (:data:`VERSION_TABLE`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION_TABLE = "autotune_alembic_version"


def utcnow() -> datetime:
    """Timezone-aware now, for default timestamps."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of brian2-autotune's tables."""


class HostRow(Base):
    """A machine, by fingerprint."""

    __tablename__ = "autotune_hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    components: Mapped[dict[str, Any]] = mapped_column(JSON)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkloadRow(Base):
    """A workload, by signature."""

    __tablename__ = "autotune_workloads"
    id: Mapped[int] = mapped_column(primary_key=True)
    signature: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CalibrationRow(Base):
    """One calibration run of one workload on one host."""

    __tablename__ = "autotune_calibrations"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("autotune_hosts.id"), index=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("autotune_workloads.id"), index=True)
    study_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    load: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TrialRow(Base):
    """One measurement; never updated or deleted."""

    __tablename__ = "autotune_trials"
    id: Mapped[int] = mapped_column(primary_key=True)
    calibration_id: Mapped[int] = mapped_column(ForeignKey("autotune_calibrations.id"),
                                                index=True)
    config_key: Mapped[str] = mapped_column(String(100), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    duration: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20))
    phases: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    cold: Mapped[bool] = mapped_column(Boolean, default=False)
    peak_rss: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    observables: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    neurons: Mapped[float | None] = mapped_column(Float, nullable=True)
    synapses: Mapped[float | None] = mapped_column(Float, nullable=True)
    spikes_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: ``search`` (measured while searching) or ``confirm`` (interleaved re-measurement).
    purpose: Mapped[str] = mapped_column(String(20), default="search", server_default="search")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunRow(Base):
    """A full run made with an applied configuration: what was predicted, what happened.

    Written with the standard library's sqlite3 by :mod:`autotune.store.lite` (a hot path), so
    timestamps are ISO strings here.
    """

    __tablename__ = "autotune_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    workload_signature: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    profile_created_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    config_key: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20))
    script: Mapped[str | None] = mapped_column(Text, nullable=True)
    simulated: Mapped[float | None] = mapped_column(Float, nullable=True)
    predicted_total: Mapped[float | None] = mapped_column(Float, nullable=True)
    predicted_loop: Mapped[float | None] = mapped_column(Float, nullable=True)
    actual_total: Mapped[float | None] = mapped_column(Float, nullable=True)
    actual_build: Mapped[float | None] = mapped_column(Float, nullable=True)
    actual_loop: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_rss: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))
    script_digest: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    cold: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    neurons: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    synapses: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pgo_phase: Mapped[str | None] = mapped_column(String(10), nullable=True)
    free_cpus: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    loop_cpu_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    setup_cpu_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    dry_neurons: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    dry_synapses: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    compile_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class PrecisionCheckRow(Base):
    """A script's float32 results compared with its float64 ones (``check-precision``): the
    newest check of a script's text decides whether float32 may be applied to it."""

    __tablename__ = "autotune_precision_checks"
    id: Mapped[int] = mapped_column(primary_key=True)
    script_digest: Mapped[str] = mapped_column(String(64), index=True)
    script: Mapped[str] = mapped_column(Text)
    config_key: Mapped[str] = mapped_column(String(100))
    tolerance: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    max_deviation: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    observables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[str] = mapped_column(String(40))


class ProfileRow(Base):
    """A calibration's conclusion; the newest per host and workload is the one applied."""

    __tablename__ = "autotune_profiles"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("autotune_hosts.id"), index=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("autotune_workloads.id"), index=True)
    calibration_id: Mapped[int | None] = mapped_column(
        ForeignKey("autotune_calibrations.id"), nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    workload_signature: Mapped[str] = mapped_column(String(64), index=True)
    best_config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    target_duration: Mapped[float] = mapped_column(Float)
    format_version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
