"""The citizen index is the same however the register's rows happen to be stored, or arrived.

Two moves on one day are ordinary (a correction, or a move and the household's re-registration);
which one is the latest is the register's own order (its later delivery, its later line), never the
order DuckDB meets the rows in, so a rerun or a reload gives the same district and household. A month
indexes only the persons its delivery mentions, and leaves the index a rebuild would give.
"""

from datetime import date, datetime
from itertools import permutations

import duckdb
import pytest

from pipelines.border.keys import Keyring
from pipelines.border.sql import hmac_params
from pipelines.defs.cross_unit import REGISTER, index_persons
from pipelines.stewardship.contracts import load_contracts

CONTRACT = load_contracts()[REGISTER]
KEY = Keyring("v1", b"k" * 32).central()
EVENTS = [  # one person: registered in Centrum, then two moves on 5 March, in the register's order
    ("p", 1980, "K", "GRUND", date(2024, 1, 1), "Centrum", "h1", "2024-01", 2),
    ("p", 1980, "K", "FLYTT_INOM", date(2024, 3, 5), "Hamnen", "h2", "2024-03", 5),
    ("p", 1980, "K", "FLYTT_INOM", date(2024, 3, 5), "Ängby", "h3", "2024-03", 9),
]


@pytest.fixture
def con():
    con = duckdb.connect()
    for zone in ("unit", "vault"):
        con.execute(f"ATTACH ':memory:' AS {zone}")
    con.execute(
        """CREATE TABLE unit.aviseringar (person_pseudonym VARCHAR, birth_year INT, sex VARCHAR,
            event VARCHAR, event_date DATE, district VARCHAR, household_key VARCHAR, _delivery VARCHAR,
            _source_line BIGINT)"""
    )
    con.execute("CREATE TABLE unit.held_deliveries (_delivery VARCHAR)")
    con.execute("CREATE TABLE unit.deliveries (_delivery VARCHAR, _loaded_at TIMESTAMP)")
    con.execute("CREATE TABLE vault.link (person_pseudonym VARCHAR, link_token VARCHAR)")
    return con


def _deliver(con, month: str, events: list[tuple], loaded: int = 1) -> None:
    """A delivery of the register, loaded at day ``loaded`` (a later day: loaded again)."""
    con.execute("DELETE FROM unit.aviseringar WHERE _delivery = $m", {"m": month})
    for line, (person, event, day, district, household) in enumerate(events):  # stored in this order
        con.execute(
            "INSERT INTO unit.aviseringar VALUES ($p, 1980 + len($p), 'K', $e, $d, $district, $h, $m, $line)",
            {
                "p": person,
                "e": event,
                "d": day,
                "district": district,
                "h": household,
                "m": month,
                "line": line,
            },
        )
        con.execute(
            "INSERT INTO vault.link SELECT $p, 't' || $p WHERE $p NOT IN (SELECT person_pseudonym FROM vault.link)",
            {"p": person},
        )
    con.execute("DELETE FROM unit.deliveries WHERE _delivery = $m", {"m": month})
    con.execute("INSERT INTO unit.deliveries VALUES ($m, $t)", {"m": month, "t": datetime(2026, 1, loaded)})


def _index(con) -> str:
    return index_persons(con, CONTRACT, hmac_params("central", KEY), KEY.pseudonym("ledger"))


def test_two_moves_on_one_day_give_the_registers_last_whatever_the_stored_order(con):
    history = [
        {"district": "Centrum", "valid_from": date(2024, 1, 1)},
        {"district": "Hamnen", "valid_from": date(2024, 3, 5)},
        {"district": "Ängby", "valid_from": date(2024, 3, 5)},
    ]
    households = [{"household_key": f"h{i}", "valid_from": h["valid_from"]} for i, h in enumerate(history, 1)]
    for stored in permutations(EVENTS):
        con.execute(
            "DELETE FROM unit.aviseringar; DELETE FROM vault.link; DROP TABLE IF EXISTS citizen_index"
        )
        for row in stored:  # one insert per row: stored in exactly this order
            con.execute("INSERT INTO unit.aviseringar VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        con.execute("INSERT INTO vault.link VALUES ('p', 't')")
        assert _index(con) == "rebuilt"
        index = "SELECT district, household_key, district_history, household_history FROM citizen_index"
        assert con.execute(index).fetchall() == [("Ängby", "h3", history, households)], stored


def _same_as_a_rebuild(con) -> None:
    con.execute("CREATE OR REPLACE TABLE kept AS SELECT * FROM citizen_index")
    con.execute("COMMENT ON TABLE citizen_index IS NULL")
    assert _index(con) == "rebuilt"
    for one, other in (("kept", "citizen_index"), ("citizen_index", "kept")):
        assert con.execute(f"SELECT * FROM {one} EXCEPT ALL SELECT * FROM {other}").fetchall() == [], one


def test_a_month_indexes_only_its_persons_anew_and_leaves_what_a_rebuild_does(con):
    people = [f"p{i}" for i in range(8)]
    _deliver(con, "2024-01", [(p, "GRUND", date(2024, 1, 1), "Centrum", f"h{p}") for p in people[:6]])
    _deliver(con, "2024-02", [("p6", "FLYTT_INOM", date(2024, 2, 3), "Hamnen", "hp6")])  # no entry event
    _deliver(con, "2024-03", [("p1", "FLYTT_INOM", date(2024, 3, 9), "Ängby", "hp0")])
    assert _index(con) == "rebuilt"
    kept = "SELECT citizen_key, rowid FROM citizen_index ORDER BY ALL"
    before = dict(con.execute(kept).fetchall())

    _deliver(
        con,
        "2024-04",
        [
            ("p1", "FLYTT_INOM", date(2024, 4, 2), "Hamnen", "hp1"),  # out of p0's household again
            ("p2", "AVLIDEN", date(2024, 4, 5), None, None),
            ("p7", "FODD", date(2024, 4, 7), "Centrum", "hp0"),  # born into p0's household
        ],
    )
    assert _index(con) == "1 of 4 deliveries indexed anew"
    after = dict(con.execute(kept).fetchall())
    untouched = {k for k, rowid in after.items() if before.get(k) == rowid}
    assert len(after) == 8 and len(untouched) == 5  # p1, p2 anew, p7 new
    _same_as_a_rebuild(con)

    assert _index(con) == "0 of 4 deliveries indexed anew"
    _deliver(con, "2024-03", [("p1", "FLYTT_INOM", date(2024, 3, 9), "Norr", "hp0")], loaded=2)
    assert _index(con) == "rebuilt"  # loaded again: its old rows' persons are not known any more
    _deliver(con, "2024-05", [("p3", "FLYTT_INOM", date(2023, 12, 1), "Söder", "hp3")])
    assert _index(con) == "rebuilt"  # an earlier first event: p6's start moves with it
    assert con.execute("SELECT valid_from FROM citizen_index WHERE household_key = 'hp6'").fetchall() == [
        (date(2023, 12, 1),)
    ]
    _deliver(con, "2024-06", [("p4", "UTFLYTTAD", date(2024, 6, 1), None, None)])
    assert _index(con) == "1 of 6 deliveries indexed anew"
    _same_as_a_rebuild(con)
