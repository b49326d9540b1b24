"""Superset's metadata database (SQLite) in write-ahead-log mode, so a request's commits cost no fsync.

Superset's event logger commits a row to its ``logs`` table for every chart-data request (three per
request: the request, its JSON serialisation and its response), and in SQLite's default rollback-
journal mode each commit waits for the disk: about 15 ms each on a busy machine, three times the
rest of a repeat view. In WAL mode with ``synchronous=NORMAL`` a commit is an append to the log:
a crash of Superset loses nothing, a power cut may lose the last commits but never corrupts the
file (SQLite's documented guarantee), and the events stay where Superset's own views read them.
Readers no longer block the writer either, which the two gunicorn workers share.

WAL's side files (``superset.db-wal``, ``-shm``) are created next to the database with its owner
even by a root process (SQLite chowns them), so the service user Superset runs as keeps them.

Loaded by Superset (``FLASK_APP_MUTATOR`` in ``superset_config.py``), inside ``.venv-superset``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


def _set_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """On every new SQLite connection (the metadata engine opens one per checkout)."""
    cursor = dbapi_connection.cursor()
    try:
        for pragma in PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def cheap_commits(app: Any) -> None:
    """Put the metadata engine's connections in WAL mode (an SQLite metadata database only)."""
    from sqlalchemy import event
    from superset import db

    engine = db.engine
    if engine.dialect.name != "sqlite" or event.contains(engine, "connect", _set_pragmas):
        return
    event.listen(engine, "connect", _set_pragmas)
    engine.dispose()  # a connection opened before the listener would keep the old journal


def engine_options() -> dict[str, Any]:
    """``SQLALCHEMY_ENGINE_OPTIONS``: keep SQLite connections open between checkouts.

    SQLAlchemy 1.4 gives a SQLite file NullPool, so every session (several per request) opened the
    file, read its schema and set the pragmas again. SQLite connections may be shared across threads
    here (``check_same_thread=false`` in the URI), one at a time, as a pool hands them out.
    """
    from sqlalchemy.pool import QueuePool

    return {"poolclass": QueuePool, "pool_size": 8, "max_overflow": 8}


def event_logger() -> Any:
    """``EVENT_LOGGER``: Superset's database event logger, one row per request instead of one per step.

    Superset logs a request (``ChartDataRestApi.data``, with the user, chart, duration and whether it
    was cached) and, inside it, its steps (``_get_data_response``, ``json_dumps``, ``execute_sql``,
    ``load_into_dataframe``, ``post_processing``) as rows of their own: three to six commits per chart
    view. The steps' timings are in the request's duration; who read what stays recorded, by the
    request's row. Outside a request (the CLI) every event is kept.
    """
    from flask import g, has_request_context
    from superset.utils.log import DBEventLogger

    class RequestEventLogger(DBEventLogger):
        @contextmanager
        def log_context(self, action: str, *args: Any, **kwargs: Any) -> Iterator[Callable[..., None]]:
            if not has_request_context():
                with super().log_context(action, *args, **kwargs) as log:
                    yield log
                return
            if g.get("knutpunkt_logged_request"):  # a step of a request that is logged itself
                yield lambda **payload: None
                return
            g.knutpunkt_logged_request = True
            try:
                with super().log_context(action, *args, **kwargs) as log:
                    yield log
            finally:
                g.knutpunkt_logged_request = False

    return RequestEventLogger()
