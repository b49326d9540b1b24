"""A repeat chart view answered before Superset builds its query context: the response, per user and snapshot.

Superset's chart cache (``dashboards/cache.py``) spares the query, but a cached view still costs about
twenty milliseconds of Superset's own work: two loads of the chart, the marshmallow query context, the
access checks and the payload's JSON, as much as opening the snapshot in DuckDB and querying it.
Here a view of ``GET /api/v1/chart/<id>/data/`` that Superset answered from its cache is kept as the
response it was, and the same view by the same user is answered with it, in a few milliseconds.

What Superset checks is checked again on every view, cached or not, before anything is served:
the user is logged in (session or JWT, as FAB's ``protect`` does), holds the endpoint's permission
and may read the chart's dataset (``raise_for_access``). A user who loses a role is refused at once.
The key holds everything the response depends on: the user, the chart and its dataset as last
changed, the user's row-level-security clauses on that dataset, the request's arguments and the
language; the cache scopes every key to the snapshot file (``SnapshotCache``), so a publish is never
served stale. Every view served here still gets its audit row, as Superset's own would.

Loaded by Superset (``FLASK_APP_MUTATOR`` in ``superset_config.py``), inside ``.venv-superset``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

CHART_DATA = re.compile(r"/api/v1/chart/(\d+)/data/?")
ENDPOINT = ("ChartDataRestApi", "get_data")
HEADER = "X-Knutpunkt-Response-Cache"  # hit | stored: what this cache did with the view
ARGUMENTS = {"force": {"false"}, "format": {"json"}}  # anything else goes to Superset as it is


def install(app: Any, folder: Path) -> None:
    """Answer repeat chart views from ``folder`` (shared by the server's workers)."""
    from dashboards.cache import SnapshotCache

    cache = SnapshotCache(str(folder), threshold=5000, default_timeout=24 * 3600)
    app.before_request(lambda: _answer(cache))
    app.after_request(lambda response: _keep(cache, response))


def _answer(cache: Any) -> Any:
    """A stored response for this view, if the user may see it now; else None (Superset answers)."""
    from flask import Response, g, request

    match = CHART_DATA.fullmatch(request.path)
    if request.method != "GET" or not match or not _plain(request.args):
        return None
    key = _key(int(match.group(1)))
    if key is None:
        return None
    started = time.perf_counter()
    stored = cache.get(key)
    if stored is None:
        g.knutpunkt_response_key = key
        return None
    _audit(int(match.group(1)), time.perf_counter() - started)
    return Response(stored, status=200, mimetype="application/json", headers={HEADER: "hit"})


def _keep(cache: Any, response: Any) -> Any:
    """Store a view Superset answered from its own cache (so its payload says ``is_cached`` truly)."""
    from flask import g

    key = g.pop("knutpunkt_response_key", None)
    if key is None or response.status_code != 200 or response.mimetype != "application/json":
        return response
    body = response.get_data()
    try:
        results = json.loads(body)["result"]
    except (ValueError, KeyError, TypeError):
        return response
    if results and all(r.get("is_cached") for r in results):
        cache.set(key, body)
        response.headers[HEADER] = "stored"
    return response


def _plain(arguments: Any) -> bool:
    return all(value in ARGUMENTS.get(name, ()) for name, value in arguments.items(multi=True))


def _key(chart_id: int) -> str | None:
    """The view's cache key, or None where this user may not see the chart now (Superset decides)."""
    from flask_babel import get_locale
    from superset import db, security_manager
    from superset.models.slice import Slice

    user = _user()
    chart = db.session.get(Slice, chart_id) if user is not None else None
    dataset = chart.datasource if chart is not None else None
    if dataset is None or not _permitted() or not security_manager.can_access_datasource(dataset):
        return None
    rls = sorted(str(f.clause) for f in security_manager.get_rls_filters(dataset))
    parts = [user.id, chart.id, str(chart.changed_on), str(dataset.changed_on), rls, str(get_locale())]
    from flask import request

    parts.append(sorted(request.args.items(multi=True)))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _user() -> Any:
    """The logged-in user, found the way FAB's ``protect`` finds them: the session, else the JWT."""
    from flask import g
    from flask_jwt_extended import verify_jwt_in_request
    from flask_login import current_user

    if current_user.is_authenticated:
        return current_user
    try:
        verify_jwt_in_request()
    except Exception:  # no valid token: Superset answers 401 itself
        return None
    return g.get("user")


def _permitted() -> bool:
    """The chart-data endpoint's own permission (``can_read`` on ``Chart``), as Superset names it."""
    from flask import current_app

    view = next(v for v in current_app.appbuilder.baseviews if type(v).__name__ == ENDPOINT[0])
    permission = view.method_permission_name.get(ENDPOINT[1], ENDPOINT[1])
    return current_app.appbuilder.sm.has_access(f"can_{permission}", view.class_permission_name)


def _audit(chart_id: int, seconds: float) -> None:
    """The view's row in Superset's event log, as its chart-data endpoint writes it."""
    from superset.extensions import event_logger

    event_logger.log_with_context(
        action=f"{ENDPOINT[0]}.data",
        duration=timedelta(seconds=seconds),
        object_ref=f"{ENDPOINT[0]}.{ENDPOINT[1]}",
        log_to_statsd=False,
        pk=chart_id,
        is_cached=True,
        served_by="knutpunkt response cache",
    )
