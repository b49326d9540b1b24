"""Superset's DuckDB connections to the serving snapshot, without opening the file for each one.

Opening a DuckDB file reads its catalogue: about 20 ms, six times the query of a typical chart, and
Superset opens a connection per query (NullPool) and one more per view of a chart on a virtual
dataset (to ask for the default schema before it looks in its cache). DuckDB shares one open
database among the connections of a process that open the same file with the same configuration,
so each Superset worker keeps one connection open on the snapshot ``current.duckdb`` points at (the
anchor) and every connection Superset opens connects to that file: a connection costs a fraction of
a millisecond.

Every connection still resolves the link when it is opened, so the first one after a publish opens
the new snapshot (and a new anchor) and never reads the old one. A watcher thread in the worker
closes an anchor within a second of the link moving away from its file, requests or not, so a
withdrawn snapshot (unlinked by the publish that follows a revocation) is not held open by an idle
worker; its database closes with the last connection still reading it (a query in flight finishes
on the file it began on, as before). The configuration is the locked one of every serving
connection (read-only, no file access, settings locked): the anchor and each connection are opened
with it, whatever Superset stored.

Loaded by Superset (``DB_CONNECTION_MUTATOR`` in ``superset_config.py``), inside ``.venv-superset``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

WATCH_SECONDS = 1.0
_lock = threading.Lock()
_anchor: dict[str, duckdb.DuckDBPyConnection] = {}  # at most one: the snapshot last resolved
_watcher: list[threading.Thread] = []


def _release(keep: str | None) -> None:
    """Close every anchor but the one on ``keep`` (the caller holds the lock)."""
    for old in [s for s in _anchor if s != keep]:
        _anchor.pop(old).close()


def _watch(link: Path) -> None:
    """Close the anchor once the link no longer points at its file (a publish moved it)."""
    while True:
        time.sleep(WATCH_SECONDS)
        with _lock:
            _release(os.path.realpath(link))


def _anchored(link: Path, snapshot: str, config: dict) -> None:
    """Keep one connection open on ``snapshot`` in this process; close the one on an earlier snapshot."""
    with _lock:
        if not _watcher:  # started in the worker that connects (gunicorn forks before any request)
            _watcher.append(
                threading.Thread(target=_watch, args=(link,), daemon=True, name="snapshot-anchor")
            )
            _watcher[0].start()
        if snapshot in _anchor:
            return
        _release(keep=None)
        _anchor[snapshot] = duckdb.connect(snapshot, read_only=True, config=dict(config))


def connector(link: Path, config: dict) -> Callable[[], Any]:
    """A ``creator`` for SQLAlchemy: a new connection to the snapshot ``link`` points at right now,
    through the process's open database of that file, wrapped as duckdb-engine wraps its own."""
    from duckdb_engine import ConnectionWrapper

    def connect() -> Any:
        snapshot = os.path.realpath(link)
        _anchored(link, snapshot, config)
        return ConnectionWrapper(duckdb.connect(snapshot, read_only=True, config=dict(config)))

    return connect
