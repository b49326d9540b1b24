"""Gallring: the retention job removes rows past a contract's retention from every zone, and audits it.

Deliveries are written for months relative to today (an old one past retention,
a recent one within it), so the test does not depend on the calendar.
"""

import shutil
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import LINK_JOB, defs
from pipelines.defs.anchors import platform_anchors, platform_instance
from pipelines.defs.cross_unit import citizen_index
from pipelines.settings import Paths
from pipelines.stewardship import approvals, audit, sharing, signing
from pipelines.stewardship.contracts import DEFAULT_DIR, load_contracts
from pipelines.units import UNITS
from tests.conftest import SOCIAL, load_checked, write_csv
from tests.corpus import write_good

REGISTER = UNITS["folkbokforing"]
RETENTION = 12  # months, written into the test's copy of the socialtjänst contract


def _month(months_ago: int) -> str:
    today = date.today()
    n = today.year * 12 + today.month - 1 - months_ago
    return f"{n // 12:04d}-{n % 12 + 1:02d}"


def _pnr(birth: str, serial: int) -> str:
    """A valid 12-digit personnummer (Luhn over YYMMDDNNN)."""
    body = birth[2:] + f"{serial:03d}"
    total = sum(sum(divmod(int(d) * (2 - i % 2), 10)) for i, d in enumerate(body))
    return birth + f"{serial:03d}" + str((10 - total % 10) % 10)


PEOPLE = [_pnr(f"19{70 + i:02d}0{1 + i % 9}1{i % 10}", 100 + 2 * i) for i in range(8)]
GONE = PEOPLE[6]  # had economic aid only in the old month
OLD, RECENT = _month(30), _month(2)


@pytest.fixture
def loaded(home, warehouse, keys, tmp_path, monkeypatch):
    """Register and economic aid delivered 30 and 2 months ago; both linked; retention 12 months."""
    contracts = tmp_path / "contracts"
    shutil.copytree(DEFAULT_DIR, contracts)
    aid_contract = contracts / "socialtjanst.ekonomiskt_bistand.yaml"
    aid_contract.write_text(aid_contract.read_text().replace("months: 60", f"months: {RETENTION}"))
    monkeypatch.setenv("KNUTPUNKT_CONTRACTS", str(contracts))

    register = [[p, "GRUND", f"{OLD}-01", "Centrum", f"H{i}", "", "", ""] for i, p in enumerate(PEOPLE)]
    write_csv(home, REGISTER, OLD, "aviseringar", register)
    for month, people in ((OLD, [*PEOPLE[:5], GONE]), (RECENT, PEOPLE[:5])):
        aid = [[f"{p[2:8]}-{p[8:]}", month, "5000,00", "Ensamstående"] for p in people]
        aid.append(["000000-0000", month, "100,00", "Ensamstående"])  # quarantined: not a personnummer
        write_good(
            home, "socialtjanst", month, skip="ekonomiskt_bistand"
        )  # a whole delivery passes its checks
        write_csv(home, SOCIAL, month, "ekonomiskt_bistand", aid)
    load_checked(SOCIAL, [OLD, RECENT], home, keys)
    load_checked(REGISTER, [OLD], home, keys)
    signing.create_key("Anna Berg")
    with platform_anchors(home) as anchors:
        for c in load_contracts().values():
            expires = date.today() + timedelta(days=30)
            approvals.approve(c, "Anna Berg", c.purposes[0].name, expires, paths=home, anchors=anchors)
    return home


def _link() -> None:
    selection = [citizen_index.key, dg.AssetKey(["cross_unit", "socialtjanst"])]
    job = defs().resolve_job_def(LINK_JOB.name)
    with platform_instance(Paths.from_env()) as instance:  # where the approvals are anchored
        assert job.execute_in_process(instance=instance, asset_selection=selection).success


def _query(path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.platform
def test_link_never_shares_rows_past_retention(loaded, warehouse):
    _link()
    zone_months = _query(
        warehouse.unit_zone("socialtjanst"), "SELECT DISTINCT _delivery FROM ekonomiskt_bistand"
    )
    assert sorted(zone_months) == [(OLD,), (RECENT,)]
    cutoff = sharing.cutoff_month(RETENTION)
    shared = _query(
        warehouse.cross_unit, "SELECT min(quarter), count(*) FROM socialtjanst.ekonomiskt_bistand"
    )[0]
    assert shared[0] >= cutoff and shared[1] == 5


@pytest.mark.platform
def test_retention_job_removes_old_rows_from_every_zone_and_audits_it(loaded, warehouse, keys):
    _link()
    # Let the link step publish the old quarter too, as it would have before the retention ran.
    cross = warehouse.cross_unit
    with duckdb.connect(str(cross)) as con:
        con.execute(
            "INSERT INTO socialtjanst.ekonomiskt_bistand "
            "SELECT citizen_key, $q, has_economic_aid, months_with_aid, known_to_folkbokforing "
            "FROM socialtjanst.ekonomiskt_bistand",
            {"q": date.fromisoformat(f"{OLD}-01")},
        ).fetchall()
    assert (loaded.landing / "socialtjanst" / OLD / "ekonomiskt_bistand.csv").exists()
    zone = warehouse.unit_zone("socialtjanst")
    assert _query(zone, f"SELECT count(*) FROM quarantine WHERE _delivery = '{OLD}'") == [(1,)]
    gone = keys.unit("socialtjanst").pseudonym(GONE).encode()
    assert gone in zone.read_bytes(), "the test must see the pseudonym in the file before gallring"
    vault = warehouse.vault("socialtjanst")
    [(linked,)] = _query(vault, "SELECT count(*) FROM link")

    warehouse.panel_cache.mkdir(parents=True)  # what discovery keeps of the rows as they were
    (warehouse.panel_cache / "about.json").write_text("{}")
    warehouse.association_sums.write_bytes(b"sums per quarter")
    result = defs().resolve_job_def("retention").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success

    assert not warehouse.panel_cache.exists() and not warehouse.association_sums.exists(), (
        "discovery reads and counts the zone anew after gallring"
    )
    assert _query(zone, "SELECT DISTINCT _delivery FROM ekonomiskt_bistand") == [(RECENT,)]
    assert _query(zone, f"SELECT count(*) FROM quarantine WHERE _delivery = '{OLD}'") == [(0,)]
    assert gone not in zone.read_bytes(), "gallrade rows must leave the disk, not only the table"
    assert _query(vault, "SELECT count(*) FROM link") == [(linked - 1,)], (
        "the vault keeps no one the zone dropped"
    )
    assert gone not in vault.read_bytes()
    assert not (loaded.landing / "socialtjanst" / OLD / "ekonomiskt_bistand.csv").exists()
    assert (loaded.landing / "socialtjanst" / RECENT / "ekonomiskt_bistand.csv").exists()
    cutoff = sharing.cutoff_month(RETENTION)
    assert _query(
        cross, f"SELECT count(*) FROM socialtjanst.ekonomiskt_bistand WHERE quarter < '{cutoff}'"
    ) == [(0,)]
    assert _query(cross, "SELECT count(*) FROM socialtjanst.ekonomiskt_bistand") == [(5,)]
    # The register keeps 120 months: its old delivery stays.
    assert _query(warehouse.unit_zone("folkbokforing"), "SELECT count(*) FROM aviseringar") == [(8,)]

    thinned = [e for e in audit.verify(loaded) if e.action == "retention"]
    assert {(e.dataset, e.details["zone"]) for e in thinned} == {
        ("socialtjanst.ekonomiskt_bistand", "unit zone and landing"),
        ("socialtjanst.ekonomiskt_bistand", "cross-unit zone"),
        (None, "linkage vault"),
    }
    unit_entry = next(e for e in thinned if e.details["zone"] == "unit zone and landing")
    assert unit_entry.details["rows"] == 6 and unit_entry.details["landing_files"] == 1
    assert unit_entry.details["quarantine_rows"] == 1

    again = defs().resolve_job_def("retention").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert again.success
    assert len([e for e in audit.verify(loaded) if e.action == "retention"]) == 3, "nothing left to remove"


def test_retention_job_steps_use_the_writers_pools():
    job = defs().resolve_job_def("retention")
    pools = {node.name: node.definition.pool for node in job.graph.node_dict.values()}
    assert pools["retention_cross_unit"] == "duckdb_cross_unit"
    for unit in UNITS:
        assert pools[f"retention_{unit}"] == f"duckdb_{unit}"
    [schedule] = [s for s in defs().schedules if s.job_name == "retention"]
    assert schedule.cron_schedule == "30 2 * * *"
