"""Superset's configuration for Knutpunkt (loaded through SUPERSET_CONFIG_PATH, inside .venv-superset).

Superset's metadata (SQLite) lives under ``$KNUTPUNKT_HOME/superset``; its secret keys beside the
platform's key file, outside the repository (``dashboards.home``). The secret key is generated on
first use (0600) rather than shipped: a default key would let anyone forge session cookies. This file
runs in Superset's own environment: of the pipeline code it reaches only the standard-library modules
``dashboards.home`` imports.
"""

from __future__ import annotations

import logging
import os
import secrets

from dashboards.home import SupersetHome

HOME = SupersetHome.from_env()


def _secret(name: str) -> str:
    """Read a generated secret, creating it (0600, exclusively) if no process has yet."""
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

# The snapshot is small and DuckDB answers in milliseconds: no result cache, so a new publish is
# visible to the next query (a cache would serve the previous snapshot until it expired).
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}

# Superset ships no Swedish UI translation: titles and labels in the bundle are Swedish, and numbers
# use Swedish separators.
D3_FORMAT = {"decimal": ",", "thousands": "\u00a0", "grouping": [3], "currency": ["", " kr"]}

FEATURE_FLAGS = {
    "ALERT_REPORTS": False,
    "EMBEDDED_SUPERSET": False,
}
# Row-level security filters apply to charts and exports; SQL Lab is for admins only (managers get
# no SQL Lab permission), so RLS_IN_SQLLAB stays off.
PREVENT_UNSAFE_DB_CONNECTIONS = True
SQLLAB_CTAS_NO_LIMIT = False
ROW_LIMIT = 50_000
LOG_LEVEL = logging.WARNING  # Superset's INFO lines drown what deploy and serve say to the user
SUPERSET_WEBSERVER_TIMEOUT = 120
