"""duckdb-engine's SQLAlchemy dialect, made once per process instead of once per chart view.

duckdb-engine (0.17) asks DuckDB for its reserved keywords every time a dialect object is made, and
Superset makes one for almost every step of a chart view (its template processor, the cache key, the
filters): about a fifth of a cached view's time went to that query (py-spy on a gunicorn worker). The
list is DuckDB's, fixed for the installed version, so it is read once per process and every dialect
takes it from there; quoting stays exactly what duckdb-engine would do.

Loaded by Superset (``superset_config.py``), inside ``.venv-superset``.
"""

from __future__ import annotations

import functools
from typing import Any

import duckdb
import duckdb_engine
from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer


@functools.cache
def reserved_words() -> frozenset[str]:
    """DuckDB's reserved keywords, as duckdb-engine reads them."""
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
        ).fetchall()
    return frozenset(name for (name,) in rows)


class OnceReadPreparer(duckdb_engine.DuckDBIdentifierPreparer):
    """duckdb-engine's identifier preparer with the keyword list read once per process."""

    def __init__(self, dialect: Any, **kwargs: Any) -> None:
        PGIdentifierPreparer.__init__(self, dialect, **kwargs)  # what duckdb-engine's runs, less the query
        self.reserved_words = self.reserved_words | reserved_words()


def install() -> None:
    """Make every duckdb-engine dialect in this process use :class:`OnceReadPreparer`."""
    duckdb_engine.Dialect.preparer = OnceReadPreparer
