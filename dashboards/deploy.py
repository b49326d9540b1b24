"""Deploy the dashboards: Superset's metadata, the bundle, managers, row-level security (in .venv-superset).

``python -m dashboards.deploy`` (what ``knutpunkt dashboards deploy`` runs) is idempotent:

1. ``superset db upgrade`` and ``superset init`` (only when Superset's version changed);
2. the admin and one manager per förvaltning, passwords generated into ``credentials.json`` (0600);
3. the YAML bundle in ``dashboards/bundle`` imported with overwrite, its database pointed at this
   platform's ``warehouse/serving/current.duckdb`` (read-only, no file access from SQL);
4. per förvaltning a role that may read only datasets with a ``forvaltning`` column, and a
   row-level-security filter ``forvaltning = '<its förvaltning>'`` on each of them, so a manager's
   charts and CSV exports hold only the förvaltning's own rows (not the kommun-wide ``Totalt``);
5. a dashboard with a chart on any other dataset is given the Admin role, so only admins list it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import duckdb

from dashboards.home import BUNDLE, SUPERSET_VENV, SupersetHome, role_name

SERVING_TOKEN = "${KNUTPUNKT_SERVING}"
RLS_COLUMN = "forvaltning"


def _snapshot_rows(home: SupersetHome, sql: str) -> list[tuple]:
    """A query's rows on the current snapshot (read-only, no file access)."""
    con = duckdb.connect(str(home.serving), read_only=True, config={"enable_external_access": False})
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def forvaltningar(home: SupersetHome) -> list[str]:
    """The förvaltningar of the org tree in the current snapshot."""
    sql = "SELECT DISTINCT forvaltning FROM org_unit WHERE level = 'förvaltning' ORDER BY 1"
    return [r[0] for r in _snapshot_rows(home, sql)]


def missing_tables(home: SupersetHome, bundle: Path = BUNDLE) -> list[str]:
    """The tables and views the bundle's physical datasets name that the current snapshot lacks."""
    import yaml

    datasets = [yaml.safe_load(p.read_text()) for p in sorted((bundle / "datasets").rglob("*.yaml"))]
    there = {n for (n,) in _snapshot_rows(home, "SELECT table_name FROM information_schema.tables")}
    return sorted(d["table_name"] for d in datasets if not d.get("sql") and d["table_name"] not in there)


def bundle_zip(home: SupersetHome, bundle: Path = BUNDLE) -> bytes:
    """The bundle as Superset's import ZIP, with the database URI pointing at this platform's snapshot."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(bundle.rglob("*.yaml")):
            text = path.read_text().replace(SERVING_TOKEN, str(home.serving))
            zf.writestr(f"knutpunkt/{path.relative_to(bundle)}", text)
    return out.getvalue()


def prepare_metadata(home: SupersetHome) -> None:
    """Create or migrate Superset's SQLite metadata and its built-in roles, once per Superset version."""
    from importlib.metadata import version

    stamp = home.root / ".initialised"
    wanted = f"apache-superset {version('apache-superset')}"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    superset = str(SUPERSET_VENV / "bin" / "superset")
    for args in (["db", "upgrade"], ["init"]):
        done = subprocess.run([superset, *args], env=home.env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"superset {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    stamp.write_text(wanted)


def deploy(home: SupersetHome) -> dict:
    """Everything after the metadata exists, in one app context; returns the credentials."""
    from superset.app import create_app

    creds = home.ensure_credentials(forvaltningar(home))
    app = create_app()
    with app.app_context():
        from superset.utils.core import override_user

        admin = ensure_user(creds["admin"], ["Admin"])
        with override_user(admin):
            import_bundle(home)
        fix_query_contexts()
        fix_filter_scopes()
        grant_managers(creds["managers"])
        restrict_dashboards(restricted_datasets())
    return creds


def ensure_user(cred: dict, roles: list[str]):
    """Create the user or reset its password and roles to what the credentials file says."""
    from superset import security_manager as sm
    from superset.extensions import db

    wanted = [sm.find_role(r) for r in roles]
    user = sm.find_user(username=cred["username"])
    if user is None:
        user = sm.add_user(
            cred["username"], cred["username"], "Knutpunkt", f"{cred['username']}@knutpunkt.invalid",
            wanted, password=cred["password"],
        )  # fmt: skip
    else:
        sm.reset_password(user.id, cred["password"])
        user.roles = wanted
    db.session.commit()
    return user


def import_bundle(home: SupersetHome) -> None:
    """Import as an assets bundle: unlike a dashboard import, it overwrites charts and datasets too."""
    from superset.commands.importers.v1.assets import ImportAssetsCommand
    from superset.commands.importers.v1.utils import get_contents_from_bundle

    with zipfile.ZipFile(io.BytesIO(bundle_zip(home))) as zf:
        contents = get_contents_from_bundle(zf)
    ImportAssetsCommand(contents).run()


def fix_query_contexts() -> None:
    """Point each chart's saved query context at its dataset's id in this Superset (ids differ per install).

    The chart-data API (``/api/v1/chart/<id>/data``, used by tests and bench) runs the saved query
    context; the bundle cannot know the ids the import assigned.
    """
    from superset.extensions import db
    from superset.models.slice import Slice

    for chart in db.session.query(Slice).all():
        if not chart.query_context:
            continue
        qc = json.loads(chart.query_context)
        qc["datasource"] = {"id": chart.datasource_id, "type": "table"}
        qc.setdefault("form_data", {})["datasource"] = f"{chart.datasource_id}__table"
        qc["form_data"]["slice_id"] = chart.id
        chart.query_context = json.dumps(qc)
    db.session.commit()


def fix_filter_scopes() -> None:
    """Give each native filter the ids of the charts in its scope in this Superset.

    The import maps the chart ids a filter's scope excludes, but not its ``chartsInScope`` list, which
    then names the bundle's placeholders (1000, 1001, ...): the charts in scope are every chart on the
    dashboard that the scope does not exclude.
    """
    from superset.extensions import db
    from superset.models.dashboard import Dashboard

    for dashboard in db.session.query(Dashboard).all():
        metadata = json.loads(dashboard.json_metadata or "{}")
        charts = sorted(chart.id for chart in dashboard.slices)
        for native in metadata.get("native_filter_configuration", []):
            excluded = set(native.get("scope", {}).get("excluded", []))
            native["chartsInScope"] = [c for c in charts if c not in excluded]
        dashboard.json_metadata = json.dumps(metadata)
    db.session.commit()


def restricted_datasets() -> list:
    """Datasets a manager may read: those with a ``forvaltning`` column (each gets an RLS filter)."""
    from superset.connectors.sqla.models import SqlaTable
    from superset.extensions import db

    return [t for t in db.session.query(SqlaTable).all() if RLS_COLUMN in {c.column_name for c in t.columns}]


def grant_managers(managers: dict[str, dict]) -> None:
    """A role and an RLS filter per förvaltning; its manager gets Gamma (the UI) plus that role."""
    from superset import security_manager as sm
    from superset.connectors.sqla.models import RowLevelSecurityFilter
    from superset.extensions import db

    datasets = restricted_datasets()
    for forvaltning, cred in managers.items():
        role = sm.add_role(role_name(forvaltning))
        role.permissions = [sm.add_permission_view_menu("datasource_access", t.perm) for t in datasets]
        name = f"RLS {forvaltning}"
        rls = db.session.query(RowLevelSecurityFilter).filter_by(name=name).one_or_none()
        if rls is None:
            rls = RowLevelSecurityFilter(name=name, filter_type="Regular")
            db.session.add(rls)
        rls.clause = f"{RLS_COLUMN} = '{forvaltning.replace(chr(39), chr(39) * 2)}'"
        rls.description = f"{role.name} ser bara {forvaltning}s rader (inte kommunens Totalt)."
        rls.tables = datasets
        rls.roles = [role]
        db.session.commit()
        ensure_user(cred, ["Gamma", role.name])


def restrict_dashboards(readable: list) -> None:
    """A dashboard with a chart on a dataset managers may not read is the admin's view only.

    With ``DASHBOARD_RBAC`` a dashboard that has roles is listed to those roles alone, so a manager never
    opens one whose panels Superset would answer with a raw "This endpoint requires the datasource"
    error; found from the charts' datasets, so a new dashboard is placed on the next deploy.
    """
    from superset import security_manager as sm
    from superset.extensions import db
    from superset.models.dashboard import Dashboard

    readable_ids = {t.id for t in readable}
    admin = sm.find_role("Admin")
    for dashboard in db.session.query(Dashboard).all():
        closed = any(chart.datasource_id not in readable_ids for chart in dashboard.slices)
        dashboard.roles = [admin] if closed else []
    db.session.commit()


def main() -> int:
    from sqlalchemy.exc import SAWarning

    warnings.simplefilter("ignore", SAWarning)  # Superset's import triggers SQLAlchemy flush notices
    home = SupersetHome.from_env()
    if not home.serving.exists():
        print(f"No serving snapshot at {home.serving}: run `knutpunkt run` first.", file=sys.stderr)
        return 1
    if missing := missing_tables(home):
        print(
            f"The serving snapshot {home.serving} has no {', '.join(missing)}, which the dashboards read: "
            "it was published by an older Knutpunkt. Run `knutpunkt run` to publish a new one.",
            file=sys.stderr,
        )
        return 1
    prepare_metadata(home)
    deploy(home)
    print(f"Dashboards deployed from {BUNDLE}; credentials in {home.credentials} (0600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
