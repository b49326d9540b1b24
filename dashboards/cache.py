"""Superset's chart-data cache, keyed on the serving snapshot it was read from.

A repeat view of a chart is answered from memory, but a publish is never served stale: every key is
prefixed with the file the ``current.duckdb`` link points at when the entry is read or written, and a
publish writes a new file and moves the link, so the next query misses and reads the new snapshot.
Entries of an earlier snapshot are never read again and age out (the cache's threshold and timeout).
The files live in Superset's home, which only the service user that runs Superset can read.
Superset's own key already holds the query, the dataset's version and the row-level-security clauses
of the user, so a manager never gets the rows cached for someone else.

Loaded by Superset (``DATA_CACHE_CONFIG`` in ``superset_config.py``), inside ``.venv-superset``.
"""

from __future__ import annotations

import os
from typing import Any

from flask_caching.backends.filesystemcache import FileSystemCache

from dashboards.home import SupersetHome


def snapshot_identity(link: str) -> str:
    """The name of the snapshot file ``link`` points at ('none' while there is none)."""
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return "none"


class SnapshotCache(FileSystemCache):
    """Flask-Caching's file cache (shared by the Superset workers), every entry scoped to the snapshot.

    Every read and write of an entry goes through ``_get_filename``, so scoping the key there scopes
    them all; the cache's own bookkeeping entry (its count of entries) stays unscoped.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.link = str(SupersetHome.from_env().serving)

    def _get_filename(self, key: str) -> str:
        if key == self._fs_count_file:
            return super()._get_filename(key)
        return super()._get_filename(f"{snapshot_identity(self.link)}:{key}")
