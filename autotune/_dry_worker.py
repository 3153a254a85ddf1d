"""Imported first by a worker that a script's dry pass starts afresh (``spawn``,
``forkserver``): stops the worker at its first ``run()`` (:mod:`autotune._dry_child`).
Outside a dry pass, importing it does nothing."""

from autotune._dry_child import stop_this_worker_at_run

stop_this_worker_at_run()
