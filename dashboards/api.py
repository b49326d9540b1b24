"""A small client for Superset's REST API (``requests`` only), used by tests, bench and the browser check.

Superset answers some failures with an HTML 500 page rather than JSON, so every call raises with
the status and the start of the body instead of failing later on a missing key.
"""

from __future__ import annotations

import json
import secrets

import requests


class SupersetError(RuntimeError):
    pass


class Superset:
    """A logged-in API session: a JWT for the API, the session cookie and a CSRF token for writes."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["Referer"] = self.url
        token = self._json(
            "POST",
            "/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db", "refresh": False},
        )["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.http.headers["X-CSRFToken"] = self._json("GET", "/api/v1/security/csrf_token/")["result"]

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.http.request(method, self.url + path, timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            raise SupersetError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response

    def _json(self, method: str, path: str, **kwargs) -> dict:
        return self.request(method, path, **kwargs).json()

    def list(self, resource: str) -> list[dict]:
        """Every object of a resource (``chart``, ``dashboard``, ``dataset``, ``rowlevelsecurity``)."""
        q = "(page:0,page_size:100)"
        return self._json("GET", f"/api/v1/{resource}/?q={q}")["result"]

    def charts(self) -> dict[str, int]:
        """Chart name -> id, as this user may see them."""
        return {c["slice_name"]: c["id"] for c in self.list("chart")}

    def chart_data(self, chart_id: int, force: bool = True) -> list[dict]:
        """The rows of a chart's saved query (``force`` bypasses the cache)."""
        return [row for result in self.chart_results(chart_id, force) for row in result["data"]]

    def chart_results(self, chart_id: int, force: bool = True) -> list[dict]:
        """The query results of a chart's saved query as Superset answers them (``data``, ``is_cached``, ...)."""
        return self._json("GET", f"/api/v1/chart/{chart_id}/data/?force={str(force).lower()}")["result"]

    def chart(self, chart_id: int) -> dict:
        """A chart's saved definition: ``form_data`` (its params) and ``query_context``, parsed."""
        result = self._json("GET", f"/api/v1/chart/{chart_id}")["result"]
        return {
            "name": result["slice_name"],
            "form_data": json.loads(result["params"] or "{}"),
            "query_context": json.loads(result["query_context"] or "{}"),
        }

    def filtered_data(self, chart_id: int, filters: list[dict]) -> list[dict]:
        """The rows of a chart's saved query with dashboard filters added (``{"col", "op", "val"}``), as a
        native filter adds them: the chart-data API alone runs the saved query without any."""
        context = self.chart(chart_id)["query_context"]
        for query in context["queries"]:
            query["filters"] = [*query.get("filters", []), *filters]
        context["force"] = True
        body = self._json("POST", "/api/v1/chart/data", json=context)
        return [row for result in body["result"] for row in result["data"]]

    def chart_csv(self, chart_id: int) -> str:
        """The chart's data as the CSV export a user downloads."""
        response = self.request("GET", f"/api/v1/chart/{chart_id}/data/?format=csv&force=true")
        return response.content.decode("utf-8-sig")

    def sql(self, database: str, sql: str) -> list[dict]:
        """Run SQL in SQL Lab (synchronously) on the database named ``database``; its rows."""
        database_id = next(d["id"] for d in self.list("database") if d["database_name"] == database)
        body = {
            "database_id": database_id, "sql": sql, "schema": "main", "runAsync": False,
            "tab": "knutpunkt", "client_id": secrets.token_hex(5),
        }  # fmt: skip
        return self._json("POST", "/api/v1/sqllab/execute/", json=body)["data"]
