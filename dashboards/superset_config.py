"""Superset's configuration for Knutpunkt (loaded through SUPERSET_CONFIG_PATH, inside .venv-superset).

Superset's metadata (SQLite) lives under ``$KNUTPUNKT_HOME/superset``; its secret keys beside the
platform's key file, outside the repository (``dashboards.home``). The secret key is generated on
first use (0600) rather than shipped: a default key would let anyone forge session cookies. This file
runs in Superset's own environment: it reaches no pipeline code, only the ``dashboards`` modules written
for that environment (``home``, ``language``, ``metadata``, ``snapshot_db``, ``dialect``, ``cache``,
``response_cache``).

Superset may open one database only: the serving snapshot, read-only, with DuckDB's file access off
and its configuration locked, whoever is logged in (admins included, who could otherwise add a
``duckdb:///:memory:`` connection and read any file the server can). Two of Superset's hooks enforce
it: ``DB_SQLA_URI_VALIDATOR`` refuses creating, editing or testing a connection to anything else,
and ``DB_CONNECTION_MUTATOR`` re-checks the URI and replaces the DuckDB connect arguments on every
connection Superset opens, whatever engine parameters are stored. Both live here, in a file no
Superset user can edit.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from dashboards import dialect, language, metadata, response_cache
from dashboards.home import SupersetHome
from dashboards.snapshot_db import connector

HOME = SupersetHome.from_env()


def _secret(name: str) -> str:
    """Read a generated secret, creating it (0600, exclusively) if no process has yet.

    A server started as the separate service user gets its secrets in its environment from the
    starting (platform) user instead (``dashboards/isolation.py``): it has no access to the folder
    beside the key file.
    """
    if given := os.environ.get(f"KNUTPUNKT_SUPERSET_{name.upper()}"):
        return given
    path = HOME.secrets / name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


SECRET_KEY = _secret("secret_key")
GLOBAL_ASYNC_QUERIES_JWT_SECRET = _secret("async_jwt_secret")
HOME.root.mkdir(parents=True, exist_ok=True, mode=0o700)
SQLALCHEMY_DATABASE_URI = f"sqlite:///{HOME.root / 'superset.db'}?check_same_thread=false"
# A cached chart view is mostly metadata work: pooled SQLite connections in WAL mode, and one event row
# per request rather than one per step of it (``dashboards/metadata.py``).
SQLALCHEMY_ENGINE_OPTIONS = metadata.engine_options()
EVENT_LOGGER = metadata.event_logger()
dialect.install()  # duckdb-engine's keyword query once per process, not once per view (dashboards/dialect.py)

# Chart results are cached in Superset's home, shared by its workers, keyed on the snapshot file as well as the query and the user's
# row-level security (``dashboards/cache.py``): a repeat view costs no query, and the first query after a
# publish reads the new snapshot. (API clients can still pass ``force=true``.)
DATA_CACHE_CONFIG = {
    "CACHE_TYPE": "dashboards.cache.SnapshotCache",
    "CACHE_DIR": str(HOME.root / "chart_cache"),
    "CACHE_DEFAULT_TIMEOUT": 24 * 3600,
    "CACHE_THRESHOLD": 5000,
}
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}

# Superset in Swedish for everyone (English stays in the language menu): our language pack, compiled
# from dashboards/translations into Superset's home (dashboards/language.py). Numbers, dates and month
# names are Swedish too.
TRANSLATIONS = HOME.root / "translations"
LANGUAGE_PACKS = language.compile_language_packs(TRANSLATIONS)
BABEL_DEFAULT_LOCALE = "sv"
BABEL_TRANSLATION_DIRECTORIES = f"translations;{TRANSLATIONS}"  # Superset's own, then ours
LANGUAGES = {"sv": {"flag": "se", "name": "Svenska"}, "en": {"flag": "us", "name": "English"}}
D3_FORMAT = {"decimal": ",", "thousands": "\u00a0", "grouping": [3], "currency": ["", " kr"]}
D3_TIME_FORMAT = language.D3_TIME_FORMAT_SV

FEATURE_FLAGS = {
    "ALERT_REPORTS": False,
    "EMBEDDED_SUPERSET": False,
    # A dashboard with roles is listed only to those roles: deploy gives a dashboard that shows data
    # managers may not read (Dataupptäckt's cross-unit aggregates) the Admin role, so no manager opens
    # a dashboard whose panels would answer "This endpoint requires the datasource ...".
    "DASHBOARD_RBAC": True,
}
# Row-level security filters apply to charts and exports; SQL Lab is for admins only (managers get
# no SQL Lab permission), so RLS_IN_SQLLAB stays off.
PREVENT_UNSAFE_DB_CONNECTIONS = True
SQLLAB_CTAS_NO_LIMIT = False
ROW_LIMIT = 50_000
LOG_LEVEL = logging.WARNING  # Superset's INFO lines drown what deploy and serve say to the user
SUPERSET_WEBSERVER_TIMEOUT = 120


# --- The one connection Superset may open (see the module docstring) -------------------------------

REFUSED = "Only the Knutpunkt serving snapshot may be connected"
SERVING_CONNECT_ARGS = {
    "read_only": True,
    "config": {"enable_external_access": False, "lock_configuration": True},
}


def _refuse(message: str, field: str = "sqlalchemy_uri") -> None:
    """Raise the error Superset's database API answers with 422 and the message.

    A validation error on the field: an edit shows it as the field's error, a create (which
    tests the connection first) as the connection test's error. Superset's own security exception
    would reach the user as "Connection failed" or "Fatal error", without the reason.
    """
    from marshmallow import ValidationError
    from superset.commands.database.exceptions import DatabaseInvalidError

    raise DatabaseInvalidError(message, [ValidationError(message, field_name=field)])


def _serving_path(database: str | None) -> Path | None:
    """The path a duckdb URI names, its folder resolved but not the file (``current.duckdb`` is a link)."""
    if not database or database.startswith((":memory:", "md:")):
        return None
    path = Path(database)
    return path.parent.resolve() / path.name if path.is_absolute() else None


def validate_uri(uri: Any) -> None:
    """Refuse every URI but ``duckdb:///<platform home>/warehouse/serving/current.duckdb``.

    Other dialects, ``:memory:``, another DuckDB file (a unit zone, an old snapshot, the key file)
    and URI options (which duckdb-engine would pass to DuckDB as settings) are all refused.
    """
    allowed = HOME.serving.parent.resolve() / HOME.serving.name
    if (
        uri.drivername != "duckdb"
        or uri.query
        or uri.host
        or uri.username
        or uri.password
        or _serving_path(uri.database) != allowed
    ):
        _refuse(f"{REFUSED}: duckdb:///{allowed}, read-only")


def lock_connection(uri: Any, params: dict, username: str | None, security_manager: Any, source: Any):
    """Every connection Superset opens: the serving snapshot only, read-only, no file access, locked.

    The stored engine parameters are not trusted: an edit that turned ``enable_external_access`` on,
    or a connection stored before this hook existed, still gets these connect arguments (plus the
    user agent Superset's DuckDB engine spec names itself with).
    """
    validate_uri(uri)
    agent = params.get("connect_args", {}).get("config", {}).get("custom_user_agent")
    config = dict(SERVING_CONNECT_ARGS["config"]) | ({"custom_user_agent": agent} if agent else {})
    # Connections go to the file the link points at as they open, through the worker's open database
    # of that file rather than opening it again (``dashboards/snapshot_db.py``).
    creator = connector(HOME.serving, SERVING_CONNECT_ARGS["config"])
    return uri, dict(params) | {
        "connect_args": {**SERVING_CONNECT_ARGS, "config": config},
        "creator": creator,
    }


def _check_stored(mapper: Any, connection: Any, database: Any) -> None:
    """Before a connection is saved (API, import, CLI): its URI and its DuckDB arguments."""
    from sqlalchemy.engine.url import make_url

    validate_uri(make_url(database.sqlalchemy_uri))
    engine_params = json.loads(database.extra or "{}").get("engine_params", {})
    if engine_params.get("connect_args", SERVING_CONNECT_ARGS) != SERVING_CONNECT_ARGS:
        _refuse(f"{REFUSED}: its connect arguments stay {json.dumps(SERVING_CONNECT_ARGS)}", "extra")


def guard_saved_connections(app: Any) -> None:
    """Refuse saving a connection to anything else, whichever way it is saved.

    Superset calls the URI validator only when it opens a connection: a create tests the connection
    first, but an edit is saved without one. These listeners refuse it at the write.
    """
    from sqlalchemy import event
    from superset.models.core import Database

    if not event.contains(Database, "before_insert", _check_stored):
        event.listen(Database, "before_insert", _check_stored)
        event.listen(Database, "before_update", _check_stored)


DB_SQLA_URI_VALIDATOR = validate_uri
DB_CONNECTION_MUTATOR = lock_connection


def mutate_app(app: Any) -> None:
    """Superset's hook on the app: the connection guard, our language packs, cheap metadata commits and
    repeat chart views answered from their stored response (``dashboards/response_cache.py``)."""
    guard_saved_connections(app)
    language.serve_language_packs(app, TRANSLATIONS, LANGUAGE_PACKS)
    metadata.cheap_commits(app)
    response_cache.install(app, HOME.root / "response_cache")


FLASK_APP_MUTATOR = mutate_app
