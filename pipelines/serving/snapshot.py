"""Write and open serving snapshots.

A publish writes a new file, ``warehouse/serving/snapshots/<UTC time>.db``, in DuckDB's v1.4.0
storage format (Superset's duckdb is 1.5.x and cannot open files in the 2.0 format), and only then
repoints ``warehouse/serving/current.duckdb`` (a symlink) at it with an atomic rename. A snapshot is
never written again after that. Readers open ``current.duckdb`` read-only: a query in flight keeps
its file open whatever the pipeline does, and the pipeline never waits for a reader's lock, since it
never opens a file anyone reads. Old snapshots beyond ``keep`` are deleted (an open reader keeps its
file until it closes it).

A withdrawal must not survive in an old snapshot: each snapshot's name carries a fingerprint of the
sharing state it was built under (``sharing``: what the cross-unit zone held and every steward
decision), and a publish removes every older snapshot whose fingerprint differs from its own, so
after a revocation, relink and publish only snapshots built without the withdrawn data remain.
Snapshots are private to the platform user, or readable by the serving group (``access.py``):
never by other users.

The snapshot files end in ``.db`` so only the pointer matches ``*.duckdb``: the warehouse's zones
are ``*.duckdb`` files, and a listing of them should show the current snapshot once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines.serving.access import restrict, serving_gid
from pipelines.serving.presentation import View

STORAGE_VERSION = "v1.4.0"  # readable by duckdb 1.4 and 1.5 (Superset's pin)
SUFFIX = ".db"


@dataclass(frozen=True)
class ServingPaths:
    root: Path  # warehouse/serving

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def current(self) -> Path:
        """What readers open: a symlink to the latest snapshot."""
        return self.root / "current.duckdb"

    def listing(self) -> list[Path]:
        return sorted(self.snapshots.glob(f"*{SUFFIX}")) if self.snapshots.exists() else []


def fingerprint(snapshot: Path) -> str:
    """The sharing fingerprint in a snapshot's name ('' for a name without one)."""
    _, _, digest = snapshot.stem.partition("-")
    return digest


KEEP = 5  # snapshots kept on disk, the current one included: readers of an older one finish


def write_snapshot(
    paths: ServingPaths,
    tables: dict[str, pl.DataFrame],
    comments: dict[str, str],
    keep: int = KEEP,
    sharing: str = "",
    views: tuple[View, ...] = (),
) -> Path:
    """Write the tables, and the ``views`` over them, into a new snapshot file, then point ``current`` at
    it; returns the file.

    ``sharing`` fingerprints the sharing state the tables were built under: older snapshots built
    under another state may hold withdrawn data and are removed.
    """
    _private_folders(paths)
    final = _new_name(paths, sharing)
    partial = final.with_name(f".{final.name}.partial")
    partial.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{partial}' AS snap (STORAGE_VERSION '{STORAGE_VERSION}')")
        for name, frame in tables.items():
            con.register("_frame", frame.to_arrow())
            con.execute(f'CREATE TABLE snap.main."{name}" AS SELECT * FROM _frame')
            con.unregister("_frame")
            if comment := comments.get(name):
                _comment(con, "TABLE", name, comment)
        for view in views:
            con.execute(f'CREATE VIEW snap.main."{view.name}" AS {view.sql}')
            _comment(con, "VIEW", view.name, view.description)
        con.execute("CHECKPOINT snap")
        con.execute("DETACH snap")
    finally:
        con.close()
    restrict(partial, serving_gid())
    _fsync(partial)
    os.replace(partial, final)
    _point(paths, final)
    _prune(paths, keep)
    return final


def _comment(con: duckdb.DuckDBPyConnection, kind: str, name: str, text: str) -> None:
    con.execute(f"COMMENT ON {kind} snap.main.\"{name}\" IS '{text.replace(chr(39), chr(39) * 2)}'")


def _private_folders(paths: ServingPaths) -> None:
    """The serving folders exist and are 0700 (0750 for the serving group), even if made by older code."""
    gid = serving_gid()
    for folder in (paths.root, paths.snapshots):
        folder.mkdir(parents=True, exist_ok=True)
        restrict(folder, gid)
    for old in paths.listing():
        restrict(old, gid)


def current_snapshot(paths: ServingPaths) -> Path:
    """The snapshot file ``current`` points at (resolved, so a reader pins one file)."""
    if not paths.current.exists():
        raise FileNotFoundError(f"no serving snapshot at {paths.current}: run the publish step first")
    return paths.current.resolve()


@contextlib.contextmanager
def open_snapshot(paths: ServingPaths) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the current snapshot, without file access from SQL (for notebooks)."""
    con = duckdb.connect(str(current_snapshot(paths)), read_only=True)
    try:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


def _new_name(paths: ServingPaths, sharing: str) -> Path:
    """A name later than every existing one, so names sort in publish order; then the fingerprint."""
    newest = paths.listing()[-1].name if paths.listing() else ""
    tail = f"-{sharing}" if sharing else ""
    while True:
        final = paths.snapshots / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}{tail}{SUFFIX}"
        if final.name > newest:
            return final


def _point(paths: ServingPaths, target: Path) -> None:
    """Swap the symlink in one rename: a reader sees the old snapshot or the new one, never neither."""
    link = paths.root / f".current.{os.getpid()}.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(target.relative_to(paths.root))
    os.replace(link, paths.current)
    _fsync(paths.root)


def _prune(paths: ServingPaths, keep: int) -> None:
    """Remove snapshots beyond ``keep`` and every one built under another sharing state.

    Unlinking a file a reader has open is safe on Linux: the reader keeps its data until it closes.
    """
    current = paths.current.resolve()
    sharing = fingerprint(current)
    older = paths.listing()[: -max(keep, 1)]
    withdrawn = [old for old in paths.listing() if fingerprint(old) != sharing]
    for old in {*older, *withdrawn} - {current}:
        old.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
