"""End to end: the main job on a small synthetic municipality, through real Dagster runs.

One run of ``knutpunkt run`` (as ``bin/demo`` does) is shared by the tests of this
module; each then checks one promise of the platform against what it wrote.
"""

import contextlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from personnummer import personnummer as oracle

from pipelines.border.keys import load_keyring
from pipelines.settings import Paths
from pipelines.units import UNITS
from tests.conftest import run_main_job
from tests.leaks import forms_in_landing, hits_in_duckdb, hits_in_files
from warehouse.layout import Warehouse


@pytest.fixture(scope="module")
def platform(discovery_platform):
    return discovery_platform


def _query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _table_counts(wh: Warehouse) -> dict[str, int]:
    counts = {}
    for path in wh.files():
        for schema, table in _query(path, "SELECT schema_name, table_name FROM duckdb_tables()"):
            if table == "deliveries":
                continue  # the log of loads: a rerun adds its own loads by design
            counts[f"{path.name}:{schema}.{table}"] = _query(
                path, f'SELECT count(*) FROM "{schema}"."{table}"'
            )[0][0]
    return counts


def test_main_job_loads_every_unit_and_says_where_to_look(platform):
    out = platform["stdout"]
    for unit in UNITS:
        assert unit in out
    assert "Dagster UI" in out and str(platform["paths"].warehouse) in out
    assert _query(platform["warehouse"].cross_unit, "SELECT count(*) FROM citizen_index")[0][0] > 1000


def test_a_held_delivery_is_one_line_of_the_report_and_every_run_succeeds(platform, monkeypatch):
    """The generator plants a renamed column in socialtjänst: held back, reported, not a crash."""
    out = platform["output"]
    for crash in ("Traceback", "STEP_FAILURE", "DagsterAssetCheckFailedError", "RUN_FAILURE"):
        assert crash not in out, out[-3000:]
    held = re.findall(r"^  socialtjanst (\d{4}-\d{2}): held by expectations: (.+)$", platform["stdout"], re.M)
    assert len(held) == 1 and "columns_differ_from_contract" in held[0][1], platform["stdout"][-3000:]
    assert "empty delivery" not in out, "a quiet month of a dataset that may be empty is not held"
    monkeypatch.setenv("DAGSTER_HOME", str(platform["paths"].dagster_home))
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert runs and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    overdue = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["units", "socialtjanst"]), "delivery_overdue")]
    )
    assert overdue, "the unit's other checks still run when a delivery is held"


def test_dagster_holds_one_partitioned_asset_per_unit_with_every_delivery(platform, monkeypatch):
    from pipelines.definitions import defs

    monkeypatch.setenv("DAGSTER_HOME", str(platform["paths"].dagster_home))
    graph = defs().resolve_asset_graph()
    instance = dg.DagsterInstance.get()
    for unit in UNITS:
        key = dg.AssetKey(["units", unit])
        assert isinstance(graph.get(key).partitions_def, dg.DynamicPartitionsDefinition)
        delivered = {p.name for p in (platform["paths"].landing / unit).iterdir()}
        assert instance.get_materialized_partitions(key) == delivered, unit


def test_linked_rows_unknown_to_folkbokforing_are_flagged_and_checked(platform, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(platform["paths"].dagster_home))
    from pipelines.defs.cross_unit import KNOWN, LINK_ASSETS

    instance = dg.DagsterInstance.get()
    for asset in LINK_ASSETS:
        key = dg.AssetCheckKey(asset.key, KNOWN)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.passed, (asset.key, evaluation.description)
    flagged = _query(
        platform["warehouse"].cross_unit,
        "SELECT count(*) FILTER (known_to_folkbokforing = false), count(*) FROM skola.inskrivning",
    )[0]
    assert flagged[1] > 0 and flagged[0] < 0.05 * flagged[1]


def test_every_delivery_reconciles(platform):
    wh = platform["warehouse"]
    for unit in UNITS.values():
        zone = wh.unit_zone(unit.name)
        broken = _query(
            zone,
            "SELECT * FROM reconciliation WHERE rows_in_file IS DISTINCT FROM rows_loaded + rows_quarantined",
        )
        assert broken == [], unit.name
        for ds in unit.datasets:
            mismatched = _query(
                zone,
                f"""SELECT r._delivery FROM (
                        SELECT _delivery, sum(rows_loaded) AS rows_loaded, sum(rows_quarantined) AS rows_quarantined
                        FROM reconciliation WHERE dataset = '{ds.name}' AND status = 'loaded' GROUP BY 1
                    ) r  -- a daily dataset has a file per day
                    LEFT JOIN (SELECT _delivery, count(*) n FROM {ds.name} GROUP BY 1) t USING (_delivery)
                    LEFT JOIN (SELECT _delivery, count(*) n FROM quarantine WHERE dataset = '{ds.name}'
                               GROUP BY 1) q USING (_delivery)
                    WHERE coalesce(t.n, 0) <> r.rows_loaded OR coalesce(q.n, 0) <> r.rows_quarantined""",
            )
            assert mismatched == [], (unit.name, ds.name)


def test_no_personnummer_anywhere_the_platform_wrote(platform):
    paths: Paths = platform["paths"]
    forms = forms_in_landing(paths.landing)
    assert len(forms) > 5000, "the scan found too few personnummer in landing to be meaningful"
    assert hits_in_files(paths.landing, forms), "the scanner must find the numbers where they are"
    leaks = hits_in_files(paths.home, forms, skip=(paths.landing,))
    for zone in platform["warehouse"].files():
        leaks |= hits_in_duckdb(zone, forms)
    assert leaks == {}


def test_no_key_material_anywhere_the_platform_wrote(platform):
    keys = load_keyring(Path(platform["env"]["KNUTPUNKT_KEY_FILE"]))
    derived = [keys.unit(u) for u in UNITS] + [keys.link(), keys.central()]
    secrets = {keys.master.hex()} | {k.secret.hex() for k in derived} | {k.inner_pad.hex() for k in derived}
    written = [p for p in platform["paths"].home.rglob("*") if p.is_file()]
    assert len(written) > 50
    for path in written:
        data = path.read_bytes().lower()
        assert not any(s.encode() in data for s in secrets), f"key material in {path}"
    for zone in platform["warehouse"].files():
        assert not _holds(zone, secrets), f"key material in {zone}"


def test_one_person_has_different_pseudonyms_per_unit_and_one_citizen_key(platform):
    wh, keys = platform["warehouse"], load_keyring(Path(platform["env"]["KNUTPUNKT_KEY_FILE"]))
    person = sorted(_personnummer(platform["paths"].landing / "skola" / "2025-03" / "inskrivning.csv"))[0]
    in_school, in_register = (
        keys.unit("skola").pseudonym(person),
        keys.unit("folkbokforing").pseudonym(person),
    )
    assert in_school != in_register
    school_rows = f"SELECT count(*) FROM inskrivning WHERE person_pseudonym = '{in_school}'"
    assert _query(wh.unit_zone("skola"), school_rows)[0][0] >= 1
    register_rows = f"SELECT count(*) FROM aviseringar WHERE person_pseudonym = '{in_register}'"
    assert _query(wh.unit_zone("folkbokforing"), register_rows)[0][0] >= 1

    citizen_key = keys.central().pseudonym(keys.link().pseudonym(person))
    linked = f"SELECT count(*) FROM skola.inskrivning WHERE citizen_key = '{citizen_key}' AND known_to_folkbokforing"
    assert _query(wh.cross_unit, linked)[0][0] >= 1
    assert _query(
        wh.cross_unit, f"SELECT count(*) FROM citizen_index WHERE citizen_key = '{citizen_key}'"
    ) == [(1,)]
    for zone in [wh.unit_zone(u) for u in UNITS] + [wh.vault(u) for u in UNITS if wh.vault(u).exists()]:
        assert not _holds(zone, {citizen_key}), f"the central key is stored in {zone}"


# When an analysis or a publish ran, and whether an earlier publish existed to audit against: the run's
# history, not what it computed (the first publish of a home has no previous one, a rerun has).
RUN_HISTORY = {"analysed_at", "published_at", "audited_with_previous"}
DISCOVERY_ASSETS = ("associations", "precedence", "segments", "kpi_deviations")


def _differences(before: Path, after: Path, schemas: tuple[str, ...]) -> list[str]:
    """Tables of two DuckDB files whose rows differ in any bit (EXCEPT ALL both ways), besides run times."""
    found = []
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{before}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{after}' AS b (READ_ONLY)")
        listing = "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = $db ORDER BY ALL"
        tables = {
            db: [t for t in con.execute(listing, {"db": db}).fetchall() if t[0] in schemas] for db in "ab"
        }
        assert tables["a"] == tables["b"] and tables["a"], tables
        for schema, table in tables["a"]:
            columns = con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'a' AND schema_name = $s "
                "AND table_name = $t ORDER BY column_index",
                {"s": schema, "t": table},
            ).fetchall()
            select = ", ".join(f'"{c}"' for (c,) in columns if c not in RUN_HISTORY)
            a, b = (f'SELECT {select} FROM {db}."{schema}"."{table}"' for db in "ab")
            only = [
                con.execute(f"SELECT count(*) FROM ({x} EXCEPT ALL {y})").fetchone()[0]
                for x, y in ((a, b), (b, a))
            ]
            if any(only):
                found.append(
                    f"{before.name} {schema}.{table}: {only[0]} rows only before, {only[1]} only after"
                )
    return found


def _data_versions(dagster_home: Path, monkeypatch) -> dict[str, list[str]]:
    """Each discovery asset's data versions, newest first."""
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    instance = dg.DagsterInstance.get()
    return {
        name: [
            r.asset_materialization.tags["dagster/data_version"]
            for r in instance.fetch_materializations(
                dg.AssetKey(["cross_unit", "discovery", name]), limit=5
            ).records
        ]
        for name in DISCOVERY_ASSETS
    }


@pytest.mark.long
def test_rerun_on_the_same_landing_is_bit_identical(platform, tmp_path, monkeypatch):
    """Same landing, same tables, same data versions: marts, discovery findings and the published snapshot
    are equal in every bit (a double summed in another order differs in its last digit), so the discovery
    assets' fingerprints of their input do not change and nothing downstream believes its input changed."""
    copy = tmp_path / "home"  # the shared home stays as the main job left it
    shutil.copytree(platform["paths"].home, copy, symlinks=True)
    before = _table_counts(Warehouse(copy / "warehouse"))
    again = run_main_job(platform["env"] | {"KNUTPUNKT_HOME": str(copy)}, "--no-generate")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _table_counts(Warehouse(copy / "warehouse")) == before
    skipped = re.search(r"not run again: ([^─]*)", again.stderr)  # the progress console is stderr
    assert skipped and set(re.findall(r"\w+", skipped[1])) == set(UNITS), "nothing new: no unit loads again"

    first, rerun = platform["paths"].warehouse, copy / "warehouse"
    assert (rerun / "serving" / "current.duckdb").resolve() != (
        first / "serving" / "current.duckdb"
    ).resolve()
    differ = _differences(first / "marts.duckdb", rerun / "marts.duckdb", ("main", "reference"))
    differ += _differences(first / "cross_unit.duckdb", rerun / "cross_unit.duckdb", ("discovery",))
    snapshots = [(w / "serving" / "current.duckdb").resolve() for w in (first, rerun)]
    differ += _differences(*snapshots, ("main",))
    assert differ == [], "\n".join(differ)
    versions = _data_versions(copy / "dagster", monkeypatch)
    for name, (latest, previous, *_) in versions.items():
        assert latest == previous, f"{name}: data version {previous} became {latest} on the same landing"


def _personnummer(delivery_file: Path) -> set[str]:
    """Normalised 12-digit numbers in one delivery file (test side, via the oracle)."""
    found = set()
    for value in pl.read_csv(delivery_file, infer_schema=False)["personnummer"].drop_nulls():
        with contextlib.suppress(oracle.PersonnummerException):
            found.add(oracle.parse(value).format(True).replace("-", "").replace("+", ""))
    return found


def _holds(zone: Path, values: set[str]) -> bool:
    """Whether any value of any column of any table in a zone contains one of the values."""
    pattern = "|".join(sorted(values))
    for schema, table in _query(zone, "SELECT schema_name, table_name FROM duckdb_tables()"):
        for (column,) in _query(zone, f'SELECT column_name FROM (DESCRIBE "{schema}"."{table}")'):
            sql = f'SELECT count(*) FROM "{schema}"."{table}" WHERE regexp_matches("{column}"::VARCHAR, \'{pattern}\')'
            if _query(zone, sql)[0][0]:
                return True
    return False


def test_main_job_shares_only_what_its_demo_steward_approved_and_the_audit_verifies(platform):
    assert "Stewardship: 16 approved" in platform["output"]
    aid = _query(platform["warehouse"].cross_unit, "DESCRIBE socialtjanst.ekonomiskt_bistand")
    shared = ["citizen_key", "quarter", "has_economic_aid", "months_with_aid", "known_to_folkbokforing"]
    assert [r[0] for r in aid] == shared
    verify = [sys.executable, "-m", "pipelines.cli", "audit", "verify"]
    done = subprocess.run(verify, env=platform["env"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"[1-9][0-9]* heads recorded in Dagster match", done.stdout), done.stdout


@pytest.mark.long
def test_a_move_reported_later_leaves_every_past_quarter_as_published(platform, tmp_path):
    """Past periods are counted by the district of their time (the citizen index keeps each person's
    districts with the dates they began), so a re-sent register month in which 300 people moved within
    the municipality changes the present quarter and no published figure of an earlier one."""
    copy = tmp_path / "home"
    shutil.copytree(platform["paths"].home, copy, symlinks=True)
    register = copy / "landing" / "folkbokforing"
    months = sorted(p.name for p in register.iterdir() if p.is_dir())
    everyone = pl.read_csv(register / months[0] / "aviseringar.csv", infer_schema=False)
    districts = sorted(everyone["distrikt"].drop_nulls().unique())
    elsewhere = {d: districts[(i + 1) % len(districts)] for i, d in enumerate(districts)}
    movers = (
        everyone.filter(pl.col("handelse") == "GRUND")
        .head(300)
        .with_columns(
            handelse=pl.lit("FLYTT_INOM"),
            handelsedatum=pl.lit(f"{months[-1]}-20"),
            distrikt=pl.col("distrikt").replace_strict(elsewhere),
        )
    )
    with (register / months[-1] / "aviseringar.csv").open("a", encoding="utf-8", newline="") as f:
        movers.write_csv(f, include_header=False, line_terminator="\r\n")
    again = run_main_job(platform["env"] | {"KNUTPUNKT_HOME": str(copy)}, "--no-generate")
    assert again.returncode == 0, again.stderr[-3000:]

    present = f"DATE '{months[-1]}-01' - INTERVAL ((month(DATE '{months[-1]}-01') - 1) % 3) MONTH"
    snapshots = [
        (home / "warehouse" / "serving" / "current.duckdb").resolve()
        for home in (platform["paths"].home, copy)
    ]
    assert snapshots[0] != snapshots[1]
    with duckdb.connect() as con:
        for i, path in enumerate(snapshots):
            con.execute(f"ATTACH '{path}' AS s{i} (READ_ONLY)")
        past = [
            con.execute(
                f"SELECT count(*) FROM (SELECT * FROM {a}.discovery_quarter WHERE quarter < {present} "
                f"EXCEPT ALL SELECT * FROM {b}.discovery_quarter WHERE quarter < {present})"
            ).fetchone()[0]
            for a, b in (("s0", "s1"), ("s1", "s0"))
        ]
        now = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM s1.discovery_quarter WHERE quarter >= {present} "
            f"EXCEPT ALL SELECT * FROM s0.discovery_quarter WHERE quarter >= {present})"
        ).fetchone()[0]
    assert past == [0, 0], f"{past} rows of past quarters moved between the two publishes"
    assert now > 0, "the moves must show in the present quarter, or the test proves nothing"
