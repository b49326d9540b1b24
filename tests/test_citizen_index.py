"""The citizen index is the same however the register's rows happen to be stored.

Two moves on one day are ordinary (a correction, or a move and the household's re-registration);
which one is the latest is the register's own order (its later delivery, its later line), never the
order DuckDB meets the rows in, so a rerun or a reload gives the same district and household.
"""

from datetime import date
from itertools import permutations

import duckdb

from pipelines.border.keys import Keyring
from pipelines.border.sql import hmac_params
from pipelines.defs.cross_unit import CITIZEN_INDEX_SQL
from warehouse.layout import used

AVISERINGAR = """CREATE TABLE unit.aviseringar (person_pseudonym VARCHAR, birth_year INT, sex VARCHAR,
    event VARCHAR, event_date DATE, district VARCHAR, household_key VARCHAR, _delivery VARCHAR,
    _source_line BIGINT)"""
EVENTS = [  # one person: registered in Centrum, then two moves on 5 March, in the register's order
    ("p", 1980, "K", "GRUND", date(2024, 1, 1), "Centrum", "h1", "2024-01", 2),
    ("p", 1980, "K", "FLYTT_INOM", date(2024, 3, 5), "Hamnen", "h2", "2024-03", 5),
    ("p", 1980, "K", "FLYTT_INOM", date(2024, 3, 5), "Ängby", "h3", "2024-03", 9),
]


def _index(events: list[tuple]) -> list[tuple]:
    con = duckdb.connect()
    for zone in ("unit", "vault"):
        con.execute(f"ATTACH ':memory:' AS {zone}")
    con.execute(AVISERINGAR)
    con.execute("CREATE TABLE unit.held_deliveries (_delivery VARCHAR)")
    con.execute("CREATE TABLE vault.link AS SELECT 'p' AS person_pseudonym, 't' AS link_token")
    for row in events:  # one insert per row: stored in exactly this order
        con.execute("INSERT INTO unit.aviseringar VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    params = {"cutoff": "2000-01"} | hmac_params("central", Keyring("v1", b"k" * 32).central())
    con.execute(CITIZEN_INDEX_SQL, used(CITIZEN_INDEX_SQL, params))
    return con.execute(
        "SELECT district, household_key, district_history, household_history FROM citizen_index"
    ).fetchall()


def test_two_moves_on_one_day_give_the_registers_last_whatever_the_stored_order():
    history = [
        {"district": "Centrum", "valid_from": date(2024, 1, 1)},
        {"district": "Hamnen", "valid_from": date(2024, 3, 5)},
        {"district": "Ängby", "valid_from": date(2024, 3, 5)},
    ]
    households = [{"household_key": f"h{i}", "valid_from": h["valid_from"]} for i, h in enumerate(history, 1)]
    for stored in permutations(EVENTS):
        assert _index(list(stored)) == [("Ängby", "h3", history, households)], stored
