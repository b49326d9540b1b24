"""Rewrite a DuckDB zone file so that deleted rows are gone from the disk, not only from the tables.

DuckDB frees the blocks of deleted or dropped rows at a checkpoint but does
not overwrite them, so the bytes of gallrade or withdrawn data can stay in
the file. Copying the database into a fresh file and renaming it over the old
one leaves only live data. The caller must hold the file's writer pool; readers
that already have the old file open keep reading the old inode until they close.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def compact(path: Path) -> None:
    """Replace ``path`` with a copy holding only its live data (atomic rename)."""
    fresh = path.with_name(f".{path.stem}.compacting.duckdb")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS old (READ_ONLY)").fetchall()
        con.execute(f"ATTACH '{fresh}' AS fresh").fetchall()
        con.execute("COPY FROM DATABASE old TO fresh").fetchall()
        con.execute("DETACH fresh").fetchall()
        con.execute("DETACH old").fetchall()
    finally:
        con.close()
    os.replace(fresh, path)
