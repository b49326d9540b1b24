"""Loading one delivery into a real DuckDB unit zone: nothing lost, reruns idempotent, loads atomic."""

import dataclasses
import signal
import subprocess
import sys

import duckdb

from pipelines.ingest.delivery import FileResult, batches, load_deliveries, load_delivery
from tests.conftest import SOCIAL, write_csv
from warehouse.layout import Warehouse

HEADER = ["Personnr", "Månad", "Belopp", "Hushållstyp"]
ALONE = "Ensamstående"


def _zone(warehouse, sql, unit="socialtjanst"):
    with duckdb.connect(str(warehouse.unit_zone(unit)), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_row_is_loaded_or_quarantined_with_its_rule(home, warehouse, keys):
    rows = [
        ["811218-9876", "2024-03", "4512,50", ALONE],  # 2: valid
        ["811218-9875", "2024-03", "100,00", ALONE],  # 3: bad check digit
        ["811218-9876", "2024-03", "4512,50", ALONE],  # 4: duplicate of line 2
        ["900101-0017", "2024-03", "-5", ALONE],  # 5: negative amount
        ["", "2024-03", "5", ALONE],  # 6: no personnummer
        ["900101-0017", "2024-03", "5", "Kollektiv"],  # 7: not an allowed household type
        ["121212+1212", "2024-03", "1 200,75", "Sammanboende"],  # 8: valid, aged 100+
    ]
    write_csv(home, SOCIAL, "2024-03", "ekonomiskt_bistand", rows)
    results = load_delivery(SOCIAL, "2024-03", home.landing, warehouse, keys)

    aid = next(r for r in results if r.dataset == "ekonomiskt_bistand")
    assert (aid.rows_in_file, aid.rows_loaded, aid.rows_quarantined) == (7, 2, 5)
    loaded = _zone(
        warehouse, "SELECT _source_line, birth_year, amount_sek FROM ekonomiskt_bistand ORDER BY 1"
    )
    assert loaded == [(2, 1981, 4512.5), (8, 1912, 1200.75)]
    quarantined = _zone(
        warehouse, 'SELECT _source_line, rule, "column", _source_file FROM quarantine ORDER BY 1'
    )
    assert quarantined == [
        (3, "invalid_personnummer", "Personnr", "socialtjanst/2024-03/ekonomiskt_bistand.csv"),
        (4, "duplicate_row", "*", "socialtjanst/2024-03/ekonomiskt_bistand.csv"),
        (5, "below_minimum", "Belopp", "socialtjanst/2024-03/ekonomiskt_bistand.csv"),
        (6, "missing_mandatory_value", "Personnr", "socialtjanst/2024-03/ekonomiskt_bistand.csv"),
        (7, "value_not_allowed", "Hushållstyp", "socialtjanst/2024-03/ekonomiskt_bistand.csv"),
    ]
    raw = _zone(warehouse, "SELECT raw_values::VARCHAR FROM quarantine WHERE _source_line = 3")[0][0]
    assert "Personnr" not in raw and "811218" not in raw and "Månad" in raw
    reconciled = _zone(
        warehouse,
        "SELECT dataset, status, rows_in_file = rows_loaded + rows_quarantined FROM reconciliation ORDER BY 1",
    )
    assert reconciled == [("barnutredningar", "missing", True), ("ekonomiskt_bistand", "loaded", True)]


def test_a_backfill_loaded_as_one_batch_stores_what_loading_month_by_month_stores(
    home, warehouse, keys, tmp_path
):
    """Batching months through one border query is only a saving. The same ten-digit personnummer is
    born in 1924 by a delivery of 2023 and in 2024 by one of 2024 (its century counts back from the
    delivery's year): a batch that gave its rows one delivery's year would differ, as would a row given
    another file's delivery or line, or a duplicate judged across files."""
    months = ["2023-12", "2024-01", "2024-12"]
    for m in months:
        rows = [
            ["241201-1237", m, "10", ALONE],
            ["850706-4569", "2023-12", "20", ALONE],  # the same row in every file: not a duplicate
            ["850706-4569", "2023-12", "20", ALONE],  # but a duplicate within its own file
            ["850706-4568", m, "30", ALONE],  # bad check digit
        ]
        write_csv(home, SOCIAL, m, "ekonomiskt_bistand", rows[: 2 + months.index(m)])
    assert list(batches(home.landing / "socialtjanst", months)) == [months], "one batch, as it is small"
    batched = Warehouse(tmp_path / "batched")
    stored = dict(load_deliveries(SOCIAL, months, home.landing, batched, keys))
    alone = {m: load_delivery(SOCIAL, m, home.landing, warehouse, keys) for m in months}
    assert {m: [_counted(r) for r in rs] for m, rs in stored.items()} == {
        m: [_counted(r) for r in rs] for m, rs in alone.items()
    }
    for table in ("ekonomiskt_bistand", "quarantine", "reconciliation", "deliveries"):
        query = f"SELECT * EXCLUDE (_loaded_at) FROM {table} ORDER BY ALL"
        with duckdb.connect(str(batched.unit_zone("socialtjanst")), read_only=True) as con:
            assert con.execute(query).fetchall() == _zone(warehouse, query), table
    born = "SELECT _delivery, birth_year FROM ekonomiskt_bistand WHERE amount_sek = 10 ORDER BY 1"
    assert _zone(warehouse, born) == [("2023-12", 1924), ("2024-01", 2024), ("2024-12", 2024)]


def _counted(r: FileResult) -> FileResult:
    """A file's result without where its rows were staged."""
    return dataclasses.replace(r, staged="", part=None)


def test_rerun_replaces_only_its_own_partition(home, warehouse, keys):
    write_csv(home, SOCIAL, "2024-01", "ekonomiskt_bistand", [["811218-9876", "2024-01", "10", ALONE]])
    write_csv(home, SOCIAL, "2024-02", "ekonomiskt_bistand", [["811218-9876", "2024-02", "10", ALONE]] * 1)
    for delivery in ("2024-01", "2024-02", "2024-02"):
        load_delivery(SOCIAL, delivery, home.landing, warehouse, keys)
    count = "SELECT _delivery, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    assert _zone(warehouse, count.format("ekonomiskt_bistand")) == [("2024-01", 1), ("2024-02", 1)]
    assert _zone(warehouse, count.format("reconciliation")) == [("2024-01", 2), ("2024-02", 2)]

    two = [["811218-9876", "2024-02", "10", ALONE], ["900101-0017", "2024-02", "20", ALONE]]
    write_csv(home, SOCIAL, "2024-02", "ekonomiskt_bistand", two)
    load_delivery(SOCIAL, "2024-02", home.landing, warehouse, keys)
    assert _zone(warehouse, count.format("ekonomiskt_bistand")) == [("2024-01", 1), ("2024-02", 2)]
    # The vault has no key constraint: its insert alone keeps one token per pseudonym, whatever reruns.
    with duckdb.connect(str(warehouse.vault(SOCIAL.name)), read_only=True) as con:
        tokens = con.execute("SELECT count(*), count(DISTINCT person_pseudonym) FROM link").fetchall()
    assert tokens == [(2, 2)]


def test_file_that_breaks_the_contract_is_quarantined_whole_and_the_rest_loads(home, warehouse, keys):
    write_csv(home, SOCIAL, "2024-01", "ekonomiskt_bistand", [["811218-9876", "2024-01", "10", ALONE]])
    load_delivery(SOCIAL, "2024-01", home.landing, warehouse, keys)
    renamed = ["Personnummer", "Månad", "Belopp", "Hushållstyp"]
    write_csv(
        home, SOCIAL, "2024-02", "ekonomiskt_bistand", [["811218-9876", "2024-02", "1", ALONE]] * 3, renamed
    )
    write_csv(home, SOCIAL, "2024-02", "barnutredningar", [["121212-1212", "2024-02-03", "", "Anmälan"]])

    results = {r.dataset: r for r in load_delivery(SOCIAL, "2024-02", home.landing, warehouse, keys)}

    rejected = results["ekonomiskt_bistand"]
    assert rejected.status == "rejected" and rejected.rows_quarantined == 3
    assert rejected.reason.startswith("columns_differ_from_contract: missing columns ['Personnr']")
    assert results["barnutredningar"].rows_loaded == 1
    assert _zone(warehouse, "SELECT _delivery FROM ekonomiskt_bistand") == [("2024-01",)]
    assert _zone(warehouse, "SELECT rule, _source_line FROM quarantine") == [
        ("columns_differ_from_contract", 1)
    ]


# Runs a load in a child process that stops, mid-transaction, right after the statement
# it is told; the parent then kills it with SIGKILL, as a crash or an OOM kill would.
KILLABLE_LOAD = """
import sys, time
import pipelines.ingest.delivery as delivery
from pipelines.border.keys import keyring_from_env
from pipelines.settings import Paths
from pipelines.units import UNITS
from warehouse.layout import Warehouse

stop_after, original = sys.argv[1], delivery.run

def run(con, sql, params=None):
    result = original(con, sql, params)
    if sql.lstrip().startswith(stop_after):
        print("stopped", flush=True)
        time.sleep(600)
    return result

delivery.run = run
p = Paths.from_env()
delivery.load_delivery(UNITS["socialtjanst"], "2024-01", p.landing, Warehouse(p.warehouse), keyring_from_env())
"""


def test_killed_load_leaves_the_previous_partition_whole(home, warehouse, keys):
    write_csv(home, SOCIAL, "2024-01", "ekonomiskt_bistand", [["811218-9876", "2024-01", "10", ALONE]])
    load_delivery(SOCIAL, "2024-01", home.landing, warehouse, keys)
    new = [["811218-9876", "2024-01", "10", ALONE], ["900101-0017", "2024-01", "20", ALONE]]
    write_csv(home, SOCIAL, "2024-01", "ekonomiskt_bistand", new)
    for stop_after in (
        "DELETE FROM ekonomiskt_bistand",
        "INSERT INTO ekonomiskt_bistand",
        "INSERT INTO reconciliation",
    ):
        child = subprocess.Popen([sys.executable, "-c", KILLABLE_LOAD, stop_after], stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"stopped", f"the load never ran {stop_after}"
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        assert _zone(warehouse, "SELECT count(*) FROM ekonomiskt_bistand") == [(1,)], (
            f"killed after {stop_after}"
        )
        reconciled = "SELECT rows_loaded FROM reconciliation WHERE dataset = 'ekonomiskt_bistand'"
        assert _zone(warehouse, reconciled) == [(1,)]
    load_delivery(SOCIAL, "2024-01", home.landing, warehouse, keys)
    assert _zone(warehouse, "SELECT count(*) FROM ekonomiskt_bistand") == [(2,)]
