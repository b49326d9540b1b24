"""A repeat chart view answered before Superset builds its query context: the response, per user and snapshot.

Superset's chart cache (``dashboards/cache.py``) spares the query, but a cached view still costs about
twenty milliseconds of Superset's own work: two loads of the chart, the marshmallow query context, the
access checks and the payload's JSON, as much as opening the snapshot in DuckDB and querying it.
Here a chart-data view that Superset answered from its cache is kept as the response it was, and the
same view by the same user is answered with it, in a few milliseconds: ``GET /api/v1/chart/<id>/data/``
(a saved chart's query, as the API runs it) and ``POST /api/v1/chart/data`` (a query context, as a
dashboard in the browser asks, keyed on the request's body). Forced views, CSV and other result types
always go to Superset.

What Superset checks is checked again on every view, cached or not, before anything is served:
the user is logged in (session or JWT, as FAB's ``protect`` does), holds the endpoint's permission
and may read the dataset (``raise_for_access``). A user who loses access is refused at once. The key
holds everything the response depends on: the user, the chart as last changed (or the query context
asked for), the dataset as last changed, the user's row-level-security clauses on it, the request's
arguments and the language; the cache scopes every key to the snapshot file (``SnapshotCache``), so a
publish is never served stale. Every view served here still gets its audit row, as Superset's would.

Loaded by Superset (``FLASK_APP_MUTATOR`` in ``superset_config.py``), inside ``.venv-superset``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

SAVED = re.compile(r"/api/v1/chart/(\d+)/data/?")  # GET: a saved chart's query, as the API runs it
ASKED = re.compile(r"/api/v1/chart/data/?")  # POST: a query context, as a dashboard in the browser asks
ENDPOINTS = {"GET": "get_data", "POST": "data"}  # ChartDataRestApi's methods, for their permission
HEADER = "X-Knutpunkt-Response-Cache"  # hit | stored: what this cache did with the view
ARGUMENTS = {"force": {"false"}, "format": {"json"}}  # GET: anything else goes to Superset as it is


class View(NamedTuple):
    """A plain chart-data view: the dataset it reads, what else its answer depends on, its audit fields."""

    dataset: Any
    asked: list
    audit: dict


def install(app: Any, folder: Path) -> None:
    """Answer repeat chart views from ``folder`` (shared by the server's workers)."""
    from dashboards.cache import SnapshotCache

    store = SnapshotCache(str(folder), threshold=5000, default_timeout=24 * 3600)
    app.before_request(lambda: _answer(store))
    app.after_request(lambda response: _keep(store, response))


def _answer(store: Any) -> Any:
    """A stored response for this view, if the user may see it now; else None (Superset answers)."""
    from flask import Response, g

    view = _view()
    key = _key(view.dataset, view.asked) if view else None
    if key is None:
        return None
    started = time.perf_counter()
    stored = store.get(key)
    if stored is None:
        g.knutpunkt_response_key = key
        return None
    _audit(time.perf_counter() - started, **view.audit)
    return Response(stored, status=200, mimetype="application/json", headers={HEADER: "hit"})


def _keep(store: Any, response: Any) -> Any:
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
        store.set(key, body)
        response.headers[HEADER] = "stored"
    return response


def _view() -> View | None:
    """The dataset a plain chart-data view reads and what else its answer depends on; None for any
    other request (forced, another format or result type, not JSON, a dataset not a table)."""
    from flask import request
    from superset import db
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.slice import Slice

    if request.method == "GET" and (saved := SAVED.fullmatch(request.path)):
        if not all(v in ARGUMENTS.get(k, ()) for k, v in request.args.items(multi=True)):
            return None
        chart = db.session.get(Slice, int(saved.group(1)))
        return (
            View(chart.datasource, ["chart", chart.id, str(chart.changed_on)], {"pk": chart.id})
            if chart
            else None
        )
    if request.method != "POST" or not ASKED.fullmatch(request.path) or not request.is_json:
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("force") or body.get("result_format", "json") != "json":
        return None
    source = body.get("datasource")
    if (
        body.get("result_type", "full") != "full"
        or not isinstance(source, dict)
        or source.get("type") != "table"
    ):
        return None
    dataset = db.session.get(SqlaTable, source["id"]) if isinstance(source.get("id"), int) else None
    return View(dataset, ["query", hashlib.sha256(request.get_data()).hexdigest()], {})


def _key(dataset: Any, asked: list) -> str | None:
    """The view's cache key, or None where this user may not see the dataset now (Superset decides)."""
    from flask import request
    from flask_babel import get_locale
    from superset import security_manager

    user = _user()
    if dataset is None or user is None or not _permitted():
        return None
    if not security_manager.can_access_datasource(dataset):
        return None
    rls = sorted(str(f.clause) for f in security_manager.get_rls_filters(dataset))
    parts = [user.id, *asked, dataset.id, str(dataset.changed_on), rls, str(get_locale())]
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
    from flask import current_app, request

    endpoint = _endpoint(current_app.appbuilder)
    method = ENDPOINTS[request.method]
    permission = endpoint.method_permission_name.get(method, method)
    return current_app.appbuilder.sm.has_access(f"can_{permission}", endpoint.class_permission_name)


@cache
def _endpoint(appbuilder: Any) -> Any:
    """Superset's chart-data API view, found once per process rather than on every view."""
    return next(v for v in appbuilder.baseviews if type(v).__name__ == "ChartDataRestApi")


def _audit(seconds: float, **payload: Any) -> None:
    """The view's row in Superset's event log, as its chart-data endpoints write it."""
    from flask import request
    from superset.extensions import event_logger

    event_logger.log_with_context(
        action="ChartDataRestApi.data",
        duration=timedelta(seconds=seconds),
        object_ref=f"ChartDataRestApi.{ENDPOINTS[request.method]}",
        log_to_statsd=False,
        **payload,
        is_cached=True,
        served_by="knutpunkt response cache",
    )
