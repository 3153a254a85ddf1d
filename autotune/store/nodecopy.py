"""A node's own copy of its profiles from a server store, and its queue of runs to send there.

``apply`` runs before every user run and must neither wait for the network nor fail because of
it; importing SQLAlchemy and a PostgreSQL driver alone costs hundreds of milliseconds. So with a
server store (PostgreSQL), ``apply`` reads a JSON copy of this host's profiles kept on the node
(:func:`read_copy`, about a millisecond), and finished runs are appended to a queue file
(:func:`queue_run`). A detached background process (:func:`spawn_refresh`, ``python -m
autotune.store.nodecopy``) brings the copy up to date and sends the queue; it runs when the copy
is older than :data:`REFRESH_AFTER` or runs are queued, one per node at a time. When it cannot
reach the server it notes why in the copy, and the next ``apply`` says so in one warning line
and goes on with the copy. Only the very first ``apply`` of a host on a node, with no copy yet,
reads the server itself.

Files, under ``<cache>/<fingerprint>/<host name>/server/<hash of the URL>``: ``profiles.json``
(the copy), ``runs.jsonl`` (the queue), ``refresh.lock`` (one refresher at a time).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autotune.paths import replace_json
from autotune.store.location import display_url

logger = logging.getLogger(__name__)

#: Seconds after which ``apply`` asks for a fresh copy in the background.
REFRESH_AFTER = 60.0
_URL_ENV = "BRIAN2_AUTOTUNE_DB"  # the refresher gets the URL here, not in its visible argv


def copy_folder(node: Path, url: str) -> Path:
    """The folder of this node's copy of the store at ``url``."""
    return node / "server" / hashlib.sha256(url.encode()).hexdigest()[:16]


def read_copy(folder: Path) -> dict[str, Any] | None:
    """The copy (``fetched_at``, ``profiles``: documents newest first, ``script_runs``: each
    script's newest runs, ``float32_checked``: scripts whose float32 check passed,
    ``error``/``error_at`` of the last failed refresh), or None when there is none or it is
    unreadable. Not to be changed in place: the same file is parsed once per process."""
    path = folder / "profiles.json"
    try:
        stat = path.stat()
    except OSError:
        return None
    return _parse_copy(str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _parse_copy(path: str, inode: int, mtime_ns: int, size: int) -> dict[str, Any] | None:
    """The copy in the file at ``path``, parsed. One ``apply`` reads it for the profile, the
    script's runs, the other scripts' run counts and the float32 check; the file's identity is
    part of the key, so a copy written since (``replace_json``: a new file) is read anew."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("profiles"), list) else None


def newest_document(copy: dict[str, Any], signature: str | None) -> dict[str, Any] | None:
    """The newest profile document in the copy (for the workload, when given)."""
    for document in copy["profiles"]:
        if signature is None or document.get("workload", {}).get("signature") == signature:
            return dict(document)
    return None


def age_seconds(copy: dict[str, Any]) -> float:
    """Seconds since the copy was last fetched (infinite when unknown)."""
    try:
        fetched = datetime.fromisoformat(copy["fetched_at"])
    except (KeyError, TypeError, ValueError):
        return float("inf")
    return (datetime.now(timezone.utc) - fetched).total_seconds()


def refresh(url: str, fingerprint: str, folder: Path) -> dict[str, Any]:
    """Fetch this host's profiles from the server into the copy and send the queued runs
    (synchronously; what the background refresher and the first ``apply`` do).

    Raises:
        StoreError: the server cannot be reached or read (the copy keeps its profiles and
            notes the error).
    """
    from autotune.errors import StoreError
    from autotune.store.repository import open_store

    folder.mkdir(parents=True, exist_ok=True)
    # One refresher at a time per node and store: two sending one queue would both send it.
    with open(folder / "refresh.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open_store(url) as store:
                profiles = [p.to_dict() for p in reversed(store.profiles(fingerprint))]
                sent = _send_queue(folder, store)
                script_runs = _by_script(store.runs(fingerprint))
                float32_checked = _passed_checks(store.precision_checks())
        except StoreError as e:
            _note_error(folder, str(e))
            raise
        copy = {"url": display_url(url), "fingerprint": fingerprint, "profiles": profiles,
                "script_runs": script_runs, "float32_checked": float32_checked,
                "fetched_at": _now(), "error": None, "error_at": None}
        replace_json(folder / "profiles.json", copy)
        _drop_sent(folder, sent)  # only now: until the copy has them, the queue shows them
    return copy


def _by_script(runs: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """The newest runs of each script (by the hash of its text), oldest first, JSON-able."""
    from autotune.store.lite import SCRIPT_HISTORY

    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run.script_digest:
            grouped.setdefault(run.script_digest, []).append(run.to_dict())
    return {digest: records[-SCRIPT_HISTORY:] for digest, records in grouped.items()}


def _passed_checks(checks: list[Any]) -> list[str]:
    """The scripts (hashes of their texts) whose newest float32 check passed."""
    newest = {check.script_digest: check.passed for check in checks}
    return sorted(digest for digest, passed in newest.items() if passed)


def server_float32_checked(url: str, digest: str, node: Path) -> bool:
    """Whether the node's copy of a server store says this script's float32 check passed."""
    return digest in (read_copy(copy_folder(node, url)) or {}).get("float32_checked", [])


def server_script_run_counts(url: str, digest: str, node: Path) -> list[int]:
    """How many runs each of this host's other scripts has in the node's copy of a server store
    (at most the copy's history per script; never touches the network)."""
    copied = (read_copy(copy_folder(node, url)) or {}).get("script_runs", {})
    return [len(runs) for key, runs in copied.items() if key != digest and isinstance(runs, list)]


def server_script_runs(url: str, digest: str, node: Path) -> list[Any]:
    """This host's runs of one script from the node's copy of a server store, with the runs
    still queued on this node (never touches the network)."""
    from autotune.runrecord import RunRecord

    folder = copy_folder(node, url)
    stored = (read_copy(folder) or {}).get("script_runs", {}).get(digest, [])
    try:
        lines = (folder / "runs.jsonl").read_text().splitlines()
    except OSError:
        lines = []
    queued = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("script_digest") == digest:
            queued.append(record)
    runs, seen = [], set()
    for record in [*stored, *queued]:  # a run sent but not yet off the queue is in both
        try:
            run = RunRecord(**record)
        except TypeError:  # a record of another version: nothing to learn from it
            continue
        if (identity := (run.created_at, run.config_key, run.actual_total)) not in seen:
            seen.add(identity)
            runs.append(run)
    return runs


def queue_run(folder: Path, record: dict[str, Any]) -> None:
    """Append a finished run to the queue (never touches the network)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "runs.jsonl", "a") as queue:
        fcntl.flock(queue, fcntl.LOCK_EX)
        queue.write(json.dumps(record) + "\n")


def queued_runs(folder: Path) -> int:
    """How many runs wait in the queue."""
    try:
        return sum(1 for line in (folder / "runs.jsonl").read_text().splitlines() if line)
    except OSError:
        return 0


def server_document(url: str, fingerprint: str, signature: str | None, node: Path
                    ) -> dict[str, Any] | None:
    """This host's newest profile document from a server store, through the node's copy: the
    network is never waited for once a copy exists (``apply``'s way in)."""
    copy = _node_copy(url, fingerprint, node)
    return newest_document(copy, signature) if copy is not None else None


def copied_documents(url: str, node: Path) -> list[dict[str, Any]]:
    """All profile documents in the node's copy of a server store, newest first, as they are
    (read after :func:`server_document`, which fetched or refreshed the copy and warned)."""
    copy = read_copy(copy_folder(node, url))
    return [dict(document) for document in copy["profiles"]] if copy is not None else []


def _node_copy(url: str, fingerprint: str, node: Path) -> dict[str, Any] | None:
    """The node's copy of this host's profiles (fetched now if there is none yet; refreshed in
    the background when old)."""
    from autotune.errors import StoreError

    folder = copy_folder(node, url)
    copy = read_copy(folder)
    if copy is None:  # the first run of this host on this node: ask the server itself
        try:
            copy = refresh(url, fingerprint, folder)
        except StoreError as e:
            logger.warning("%s; no local copy of this host's profile yet", e)
            return None
    elif copy.get("error"):
        logger.warning("store %s unreachable since %s (%s): using this node's copy of %s",
                       display_url(url), copy.get("error_at"), copy["error"],
                       copy.get("fetched_at"))
    if age_seconds(copy) > REFRESH_AFTER or copy.get("error"):
        spawn_refresh(url, fingerprint, folder)
    return copy


def spawn_refresh(url: str, fingerprint: str, folder: Path) -> None:
    """Start the background refresher, detached (it outlives this process; never raises)."""
    try:
        subprocess.Popen(
            [sys.executable, "-m", "autotune.store.nodecopy", fingerprint, str(folder)],
            env={**os.environ, _URL_ENV: url}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        logger.debug("cannot start the store refresher: %s", e)


def _send_queue(folder: Path, store: Any) -> int:
    """Send the queued runs; return how many lines were sent (or dropped as unreadable), to be
    taken off the queue by :func:`_drop_sent` once the copy shows them."""
    from autotune.runrecord import RunRecord

    path = folder / "runs.jsonl"
    if not path.exists():
        return 0
    with open(path) as queue:
        fcntl.flock(queue, fcntl.LOCK_EX)
        lines = queue.read().splitlines()
    for line in lines:
        if not line.strip():
            continue
        try:
            store.record_run_once(RunRecord(**json.loads(line)))
        except (TypeError, ValueError) as e:  # a damaged line: drop it, keep the others
            logger.warning("dropping an unreadable queued run: %s", e)
    return len(lines)


def _drop_sent(folder: Path, sent: int) -> None:
    """Take the first ``sent`` lines off the queue, keeping runs queued since."""
    if not sent:
        return
    with open(folder / "runs.jsonl", "r+") as queue:
        fcntl.flock(queue, fcntl.LOCK_EX)
        rest = queue.read().splitlines()[sent:]
        queue.seek(0)
        queue.truncate()
        queue.write("".join(line + "\n" for line in rest))


def _note_error(folder: Path, error: str) -> None:
    copy = read_copy(folder)
    if copy is not None:
        replace_json(folder / "profiles.json", {**copy, "error": error.splitlines()[0][:300],
                                               "error_at": copy.get("error_at") or _now()})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _main(argv: list[str]) -> int:
    """The background refresher: one per node and store at a time; quiet."""
    fingerprint, folder = argv[0], Path(argv[1])
    url = os.environ.get(_URL_ENV, "")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "refresh.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another refresher is at it
    started = time.monotonic()  # refresh takes the lock itself (another may come first)
    try:
        refresh(url, fingerprint, folder)
    except Exception:  # noqa: BLE001 - noted in the copy; nobody is waiting for this process
        return 1
    logger.debug("refreshed in %.2f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
