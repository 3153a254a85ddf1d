"""The repository: every read and write of the store goes through :class:`Store`.

One session scope commits, rolls back and wraps SQLAlchemy's errors in :class:`StoreError` (after
Optuna's ``_create_scoped_session``). SQLite stores use WAL and a busy timeout so that two
calibrations can write the same file at once; the schema is brought to the newest Alembic revision
when a store is opened, keeping old data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from autotune.errors import StoreError, StoreUnavailable
from autotune.host import HostFingerprint
from autotune.profile import FORMAT_VERSION, Profile
from autotune.records import PrecisionCheck, TrialResult
from autotune.runrecord import RunRecord
from autotune.store.engine import (
    describe_error,
    locked_error,
    make_engine,
    migration_lock,
    upgrade_schema,
)
from autotune.store.location import (
    SQLITE_BUSY_TIMEOUT,
    check_sqlite_location,
    display_url,
    resolve_url,
)
from autotune.store.models import (
    VERSION_TABLE,
    CalibrationRow,
    HostRow,
    PrecisionCheckRow,
    ProfileRow,
    RunRow,
    TrialRow,
    WorkloadRow,
)
from autotune.workloads import WorkloadSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationInfo:
    """A calibration as the rest of the package sees it."""

    id: int
    fingerprint: str
    workload_signature: str
    study_name: str | None
    status: str
    settings: dict[str, Any]
    load: dict[str, Any]
    started_at: datetime


class Store:
    """Read and write brian2-autotune's tables.

    Args:
        url: SQLAlchemy URL (None: ``$BRIAN2_AUTOTUNE_DB`` or the default SQLite file).
        busy_timeout: seconds to wait for a locked SQLite database before failing.

    Raises:
        StoreUnavailable: the location is unusable (corrupt, not a database, read-only,
            missing folder).
        StoreError: the database cannot be reached or upgraded.
    """

    def __init__(self, url: str | None = None, busy_timeout: float = SQLITE_BUSY_TIMEOUT,
                 _revision: str = "head") -> None:
        self.url = resolve_url(url)
        check_sqlite_location(self.url)
        where = f"cannot open store {display_url(self.url)}"
        try:
            self.engine = make_engine(self.url, busy_timeout)
            upgrade_schema(self.engine, _revision)
        except OperationalError as e:
            self._dispose_quietly()
            locked = locked_error(self.url, e, busy_timeout)
            if locked is not None:
                raise locked from e
            raise StoreUnavailable(f"{where}: {describe_error(e)}") from e
        except SQLAlchemyError as e:
            self._dispose_quietly()
            raise StoreUnavailable(f"{where}: {describe_error(e)}") from e
        except OSError as e:
            self._dispose_quietly()
            raise StoreUnavailable(f"{where}: {e.strerror}; choose another --db") from e
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.busy_timeout = busy_timeout

    def schema_lock(self) -> Any:
        """A context manager serialising table creation in this store between processes (for
        other libraries creating tables in the same database, such as Optuna's storage)."""
        return migration_lock(self.engine)

    def _dispose_quietly(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.dispose()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commit on success, roll back and raise :class:`StoreError` on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as e:
            session.rollback()
            locked = locked_error(self.url, e, self.busy_timeout)
            if locked is not None:
                raise locked from e
            raise StoreError(f"store {display_url(self.url)}: {describe_error(e)}") from e
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # --- hosts and workloads -----------------------------------------------------------------

    @staticmethod
    def _get_or_create(session: Session, query: Any, make: Callable[[], Any]) -> Any:
        """The row ``query`` finds, else a new one; safe when another process inserts it first."""
        row = session.scalar(query)
        if row is not None:
            return row
        try:
            with session.begin_nested():
                row = make()
                session.add(row)
            return row
        except IntegrityError:  # a concurrent writer created it between our select and insert
            return session.scalar(query)

    def _host_row(self, session: Session, host: HostFingerprint) -> HostRow:
        return self._get_or_create(
            session, select(HostRow).where(HostRow.fingerprint == host.fingerprint),
            lambda: HostRow(fingerprint=host.fingerprint, components=dict(host.components),
                            info=dict(host.info)))  # type: ignore[no-any-return]

    def _workload_row(self, session: Session, workload: WorkloadSpec) -> WorkloadRow:
        return self._get_or_create(
            session, select(WorkloadRow).where(WorkloadRow.signature == workload.signature),
            lambda: WorkloadRow(signature=workload.signature, name=workload.name,
                                kind=workload.kind, size=workload.size,
                                path=workload.path))  # type: ignore[no-any-return]

    def ensure_host(self, host: HostFingerprint) -> None:
        """Record ``host`` (once per fingerprint)."""
        with self.session() as s:
            self._host_row(s, host)

    def hosts(self) -> list[dict[str, Any]]:
        """Every known host: fingerprint, components, info."""
        with self.session() as s:
            return [{"fingerprint": r.fingerprint, "components": dict(r.components),
                     "info": dict(r.info)} for r in s.scalars(select(HostRow).order_by(HostRow.id))]

    # --- calibrations and trials -------------------------------------------------------------

    def start_calibration(self, host: HostFingerprint, workload: WorkloadSpec,
                          settings: dict[str, Any], load: dict[str, Any]) -> CalibrationInfo:
        """Record a new running calibration; its study name is set by :meth:`set_study_name`."""
        with self.session() as s:
            host_row = self._host_row(s, host)
            workload_row = self._workload_row(s, workload)
            row = CalibrationRow(host_id=host_row.id, workload_id=workload_row.id,
                                 settings=settings, load=load, status="running")
            s.add(row)
            s.flush()
            return self._calibration_info(row, host_row, workload_row)

    @staticmethod
    def _calibration_info(row: CalibrationRow, host: HostRow, workload: WorkloadRow
                          ) -> CalibrationInfo:
        return CalibrationInfo(row.id, host.fingerprint, workload.signature, row.study_name,
                               row.status, dict(row.settings), dict(row.load), row.started_at)

    def set_study_name(self, calibration_id: int, name: str) -> None:
        """Link a calibration to its Optuna study."""
        with self.session() as s:
            row = s.get(CalibrationRow, calibration_id)
            if row is None:
                raise StoreError(f"no calibration {calibration_id}")
            row.study_name = name

    def resumable_calibration(self, fingerprint: str, signature: str) -> CalibrationInfo | None:
        """The newest unfinished calibration of this host and workload, if any."""
        with self.session() as s:
            query = _calibrations(fingerprint, signature, ("running", "interrupted")).limit(1)
            found = s.execute(query).first()
            return self._calibration_info(*found) if found else None

    def joinable_calibration(self, fingerprint: str, signature: str, settings: dict[str, Any]
                             ) -> CalibrationInfo | None:
        """The newest running calibration of this host and workload with these settings (one
        that identical nodes started: a new node joins it)."""
        with self.session() as s:
            for found in s.execute(_calibrations(fingerprint, signature, ("running",))):
                if dict(found[0].settings) == settings:
                    return self._calibration_info(*found)
            return None

    def claim_finalization(self, calibration_id: int) -> bool:
        """Mark the calibration ``finalizing`` unless another worker already did: True for the
        one worker that confirms the finalists and writes the profile."""
        with self.session() as s:
            result = s.execute(update(CalibrationRow)
                               .where(CalibrationRow.id == calibration_id,
                                      CalibrationRow.status.in_(("running", "interrupted")))
                               .values(status="finalizing"))
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def finish_calibration(self, calibration_id: int, status: str,
                           load: dict[str, Any] | None = None) -> None:
        """Mark a calibration ``finished``, ``interrupted`` or ``failed``."""
        with self.session() as s:
            row = s.get(CalibrationRow, calibration_id)
            if row is None:
                raise StoreError(f"no calibration {calibration_id}")
            row.status = status
            row.finished_at = datetime.now(timezone.utc)
            if load is not None:
                row.load = load

    def record_run(self, record: RunRecord) -> None:
        """Append a full run (for non-SQLite stores; SQLite goes through :mod:`.lite`)."""
        with self.session() as s:
            s.add(RunRow(**record.to_dict()))

    def record_run_once(self, record: RunRecord) -> bool:
        """Append a run unless the store already has it (same host, time, configuration, script
        text and measured times); True when appended. A node's queue of runs is delivered at
        least once: a refresher that sent a run and was cut off before taking it off the queue
        sends it again."""
        with self.session() as s:
            same = select(RunRow.id).where(
                RunRow.fingerprint == record.fingerprint,
                RunRow.created_at == record.created_at,
                RunRow.config_key == record.config_key,
                RunRow.script_digest.is_(None) if record.script_digest is None
                else RunRow.script_digest == record.script_digest,
                RunRow.actual_total.is_(None) if record.actual_total is None
                else RunRow.actual_total == record.actual_total).limit(1)
            if s.scalars(same).first() is not None:
                return False
            s.add(RunRow(**record.to_dict()))
            return True

    def runs(self, fingerprint: str | None = None) -> list[RunRecord]:
        """Recorded full runs, oldest first (of one host when ``fingerprint`` is given)."""
        with self.session() as s:
            query = select(RunRow).order_by(RunRow.id)
            if fingerprint:
                query = query.where(RunRow.fingerprint == fingerprint)
            fields = RunRecord.__dataclass_fields__
            return [RunRecord(**{f: getattr(r, f) for f in fields}) for r in s.scalars(query)]

    def record_precision_check(self, check: PrecisionCheck) -> None:
        """Append a script's float32 check (the newest per script decides)."""
        with self.session() as s:
            s.add(PrecisionCheckRow(**check.to_dict()))

    def precision_checks(self) -> list[PrecisionCheck]:
        """Every float32 check, oldest first."""
        with self.session() as s:
            rows = s.scalars(select(PrecisionCheckRow).order_by(PrecisionCheckRow.id))
            fields = PrecisionCheck.__dataclass_fields__
            return [PrecisionCheck(**{f: getattr(r, f) for f in fields}) for r in rows]

    def record_trial(self, calibration_id: int, result: TrialResult,
                     purpose: str = "search") -> None:
        """Append one measurement (committed at once, so an interruption loses nothing)."""
        model = result.model or {}
        with self.session() as s:
            s.add(TrialRow(
                calibration_id=calibration_id, config_key=result.config.key,
                config=result.config.to_dict(), duration=result.duration, status=result.status,
                phases=dict(result.phases), cold=result.cold, peak_rss=result.peak_rss,
                observables=dict(result.observables), neurons=model.get("neurons"),
                synapses=model.get("synapses"), spikes_per_second=model.get("spikes_per_second"),
                exit_code=result.exit_code, error=result.error, purpose=purpose,
            ))

    def trials(self, calibration_id: int, purpose: str | None = None) -> list[TrialResult]:
        """Every trial of a calibration (of one purpose, if given), in the order measured."""
        with self.session() as s:
            query = select(TrialRow).where(TrialRow.calibration_id == calibration_id)
            if purpose is not None:
                query = query.where(TrialRow.purpose == purpose)
            rows = s.scalars(query.order_by(TrialRow.id))
            return [TrialResult.from_dict({
                "config": r.config, "duration": r.duration, "status": r.status,
                "phases": r.phases, "cold": r.cold, "peak_rss": r.peak_rss,
                "observables": r.observables,
                "model": {"neurons": r.neurons, "synapses": r.synapses,
                          "spikes_per_second": r.spikes_per_second},
                "exit_code": r.exit_code, "error": r.error}) for r in rows]

    # --- profiles ----------------------------------------------------------------------------

    def save_profile(self, profile: Profile, host: HostFingerprint | None = None,
                     workload: WorkloadSpec | None = None) -> int:
        """Store a profile; it becomes the one applied for its host and workload."""
        host = host or HostFingerprint(dict(profile.host_components))
        if host.fingerprint != profile.fingerprint:
            raise StoreError("profile fingerprint does not match its host components")
        workload = workload or WorkloadSpec.from_dict(profile.workload)
        with self.session() as s:
            host_row = self._host_row(s, host)
            workload_row = self._workload_row(s, workload)
            calibration = (s.get(CalibrationRow, profile.calibration_id)
                           if profile.calibration_id is not None else None)
            local = calibration is not None and calibration.host_id == host_row.id
            # a profile imported from another store keeps no link to a calibration
            row = _profile_row(profile, host_row, workload_row,
                               profile.calibration_id if local else None)
            s.add(row)
            s.flush()
            return row.id

    def import_profiles(self, host: HostFingerprint, profiles: list[Profile]) -> int:
        """Add a host and its profiles in one transaction; skip profiles already stored.

        A profile is the same when its host, workload and creation time are; re-importing a
        file therefore changes nothing. Returns the number of profiles added.
        """
        added = 0
        with self.session() as s:
            host_row = self._host_row(s, host)
            for profile in profiles:
                workload = WorkloadSpec.from_dict(profile.workload)
                exists = s.scalar(select(ProfileRow.id).where(
                    ProfileRow.fingerprint == profile.fingerprint,
                    ProfileRow.workload_signature == workload.signature,
                    ProfileRow.document["created_at"].as_string() == profile.created_at))
                if exists is not None:
                    continue
                s.add(_profile_row(profile, host_row, self._workload_row(s, workload), None))
                added += 1
        return added

    def trial_summaries(self, fingerprint: str) -> list[dict[str, Any]]:
        """Per workload and configuration: trial counts and median phases, for exports."""
        import statistics

        with self.session() as s:
            query = (select(TrialRow, WorkloadRow.signature)
                     .join(CalibrationRow, TrialRow.calibration_id == CalibrationRow.id)
                     .join(HostRow, CalibrationRow.host_id == HostRow.id)
                     .join(WorkloadRow, CalibrationRow.workload_id == WorkloadRow.id)
                     .where(HostRow.fingerprint == fingerprint))
            groups: dict[tuple[str, str], list[TrialRow]] = {}
            for trial, signature in s.execute(query):
                groups.setdefault((signature, trial.config_key), []).append(trial)
        summaries = []
        for (signature, key), trials in sorted(groups.items()):
            ok = [t for t in trials if t.status == "ok"]
            summaries.append({
                "workload_signature": signature, "config": key, "trials": len(trials),
                "ok": len(ok),
                "median_total": statistics.median(t.phases["total"] for t in ok) if ok else None,
                "median_run_per_second": statistics.median(
                    t.phases["run"] / t.duration for t in ok) if ok else None,
            })
        return summaries

    def latest_profile(self, fingerprint: str, signature: str | None = None) -> Profile | None:
        """The newest profile of a host (for one workload, or its newest of any)."""
        with self.session() as s:
            query = select(ProfileRow).where(ProfileRow.fingerprint == fingerprint)
            if signature:
                query = query.where(ProfileRow.workload_signature == signature)
            row = s.scalar(query.order_by(ProfileRow.id.desc()).limit(1))
            return Profile.from_dict(row.document) if row else None

    def profiles(self, fingerprint: str | None = None) -> list[Profile]:
        """The newest profile per (host, workload), of one host or of all."""
        with self.session() as s:
            query = select(ProfileRow).order_by(ProfileRow.id.desc())
            if fingerprint:
                query = query.where(ProfileRow.fingerprint == fingerprint)
            seen: set[tuple[str, str]] = set()
            newest: list[Profile] = []
            for row in s.scalars(query):
                key = (row.fingerprint, row.workload_signature)
                if key not in seen:
                    seen.add(key)
                    newest.append(Profile.from_dict(row.document))
            return newest[::-1]


def open_store(url: str | None = None) -> Store:
    """Open (creating or upgrading) the store at ``url``; see :class:`Store`."""
    return Store(url)


__all__ = ["VERSION_TABLE", "CalibrationInfo", "Store", "open_store", "upgrade_schema"]


def _profile_row(profile: Profile, host_row: HostRow, workload_row: WorkloadRow,
                 calibration_id: int | None) -> ProfileRow:
    """The row storing ``profile`` (its best configuration denormalised for queries)."""
    best = profile.best()
    return ProfileRow(host_id=host_row.id, workload_id=workload_row.id,
                      calibration_id=calibration_id, fingerprint=profile.fingerprint,
                      workload_signature=workload_row.signature,
                      best_config=best.config.to_dict() if best else None,
                      target_duration=profile.target_duration,
                      format_version=FORMAT_VERSION, document=profile.to_dict())


def _calibrations(fingerprint: str, signature: str, statuses: tuple[str, ...]) -> Any:
    """Calibrations of a host and workload in these states, with their rows, newest first."""
    return (select(CalibrationRow, HostRow, WorkloadRow)
            .join(HostRow, CalibrationRow.host_id == HostRow.id)
            .join(WorkloadRow, CalibrationRow.workload_id == WorkloadRow.id)
            .where(HostRow.fingerprint == fingerprint, WorkloadRow.signature == signature,
                   CalibrationRow.status.in_(statuses))
            .order_by(CalibrationRow.id.desc()))
