"""A link adds only the deliveries that changed, and leaves what a rebuild leaves.

A detail table of the cross-unit zone is kept per delivery (``pipelines.stewardship.ledger``): after each
change a delivery can go through (a new month, a re-sent one, held, released, past retention, a load of
unknown time) and each change of the register (a person folkbokföring comes to know, one it forgets), the
table must hold exactly the rows a rebuild gives, and a change of basis (another central key, the
register withdrawn, a ledger that is not one) must rebuild it. Real DuckDB, the gate's own SQL.
"""

import dataclasses
from datetime import date, datetime

import duckdb
import pytest

from pipelines.border.keys import Keyring
from pipelines.border.sql import hmac_params
from pipelines.defs.cross_unit import CITIZEN_KEY, _linked_sql, _publish
from pipelines.stewardship import sharing
from pipelines.stewardship.contracts import load_contracts

CONTRACT = load_contracts()["kontaktcenter.kontakter"]
TABLE = "kontaktcenter.kontakter"
KEY = Keyring("v1", b"k" * 32).central()
PEOPLE = [f"p{i}" for i in range(10)]


def _month(ago: int) -> str:
    n = date.today().year * 12 + date.today().month - 1 - ago
    return f"{n // 12:04d}-{n % 12 + 1:02d}"


M1, M2, M3, M4 = _month(5), _month(4), _month(3), _month(2)


@pytest.fixture
def con():
    con = duckdb.connect()
    for zone in ("unit", "vault"):
        con.execute(f"ATTACH ':memory:' AS {zone}")
    con.execute("CREATE SCHEMA kontaktcenter")
    con.execute(
        """CREATE TABLE unit.kontakter (person_pseudonym VARCHAR, contact_id VARCHAR, contacted_at TIMESTAMP,
            channel VARCHAR, topic VARCHAR, solved_first_contact BOOLEAN, _delivery VARCHAR)"""
    )
    con.execute("CREATE TABLE unit.held_deliveries (_delivery VARCHAR, checks VARCHAR)")
    con.execute("CREATE TABLE unit.deliveries (_delivery VARCHAR, fingerprint VARCHAR, _loaded_at TIMESTAMP)")
    con.execute(
        "CREATE TABLE vault.link AS SELECT unnest($p) AS person_pseudonym, 't' || unnest($p) AS link_token",
        {"p": PEOPLE},
    )
    _register(con, PEOPLE[:7])
    return con


def _register(con, people: list[str]) -> None:
    sql = f"CREATE OR REPLACE TABLE citizen_index AS SELECT {CITIZEN_KEY} AS citizen_key FROM vault.link link WHERE person_pseudonym IN $p"
    con.execute(sql, {"p": people} | hmac_params("central", KEY))


def _deliver(con, month: str, people: list[str], loaded: int | None, channel: str = "telefon") -> None:
    con.execute("DELETE FROM unit.kontakter WHERE _delivery = $m", {"m": month})
    con.execute(
        """INSERT INTO unit.kontakter SELECT p, $m || '-' || p || '-' || k, strptime($m, '%Y-%m') + INTERVAL (k) DAY,
               $c, 'bygglov', k = 1, $m FROM unnest($p) t(p), range(2) r(k)""",
        {"m": month, "p": people, "c": channel},
    )
    con.execute(
        "DELETE FROM unit.deliveries WHERE _delivery = $m AND $unknown",
        {"m": month, "unknown": loaded is None},
    )
    if loaded is not None:
        con.execute(
            "INSERT INTO unit.deliveries VALUES ($m, 'fp', $t)", {"m": month, "t": datetime(2026, 1, loaded)}
        )


def _link(con, contract=CONTRACT, key=KEY) -> str:
    rows, how = _publish(con, contract, hmac_params("central", key), key.pseudonym("ledger"))
    assert rows == con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    return how


def _rebuilt(con, contract=CONTRACT, key=KEY) -> list[tuple]:
    indexed = bool(
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'citizen_index'").fetchone()[0]
    )
    sql = _linked_sql(sharing.shared_sql(contract), indexed)
    bound = sharing.params(contract) | hmac_params("central", key)
    return sorted(con.execute(sql, {k: v for k, v in bound.items() if f"${k}" in sql}).fetchall(), key=repr)


def _table(con) -> list[tuple]:
    return sorted(con.execute(f"SELECT * FROM {TABLE}").fetchall(), key=repr)


def test_each_change_of_a_delivery_or_the_register_links_only_what_changed_and_gives_the_rebuild(con):
    for month, day in ((M1, 1), (M2, 2), (M3, 3)):
        _deliver(con, month, PEOPLE[:6], day)
    steps = [
        (lambda: None, "rebuilt"),
        (lambda: _deliver(con, M4, PEOPLE[2:9], 4), "1 of 4 deliveries linked anew, 0 taken out"),
        (lambda: _deliver(con, M2, PEOPLE[5:], 5, "e-post"), "1 of 4 deliveries linked anew, 1 taken out"),
        (
            lambda: con.execute("INSERT INTO unit.held_deliveries VALUES ($m, 'reconciliation')", {"m": M3}),
            "0 of 3 deliveries linked anew, 1 taken out",
        ),
        (
            lambda: con.execute("DELETE FROM unit.held_deliveries"),
            "1 of 4 deliveries linked anew, 0 taken out",
        ),
        (lambda: _register(con, [*PEOPLE[2:8], "p9"]), "0 of 4 deliveries linked anew, 0 taken out"),
        (lambda: _deliver(con, M1, PEOPLE[:2], None), "1 of 4 deliveries linked anew, 1 taken out"),
        (lambda: None, "1 of 4 deliveries linked anew, 1 taken out"),  # of unknown time: always anew
    ]
    for change, how in steps:
        change()
        assert _link(con) == how
        assert _table(con) == _rebuilt(con), how
    known = con.execute(
        f"SELECT count(*) FILTER (known_to_folkbokforing), count(*) FILTER (NOT known_to_folkbokforing) FROM {TABLE}"
    ).fetchone()
    assert known[0] > 0 and known[1] > 0, "the register's change reached rows linked before it"


def test_a_delivery_past_retention_is_taken_out(con):
    for month, day in ((M1, 1), (M2, 2), (M4, 4)):
        _deliver(con, month, PEOPLE, day)
    assert _link(con) == "rebuilt"
    shorter = dataclasses.replace(CONTRACT, retention_months=4)  # M1 (5 months ago) falls out
    assert _link(con, shorter) == "0 of 2 deliveries linked anew, 1 taken out"
    assert _table(con) == _rebuilt(con, shorter) and M1 not in {r[-2] for r in _table(con)}


@pytest.mark.parametrize(
    "change",
    [
        "another central key",
        "the register withdrawn",
        "a comment that is no ledger",
        "another contract version",
    ],
)
def test_a_table_linked_under_another_basis_is_rebuilt(con, change):
    for month, day in ((M1, 1), (M2, 2)):
        _deliver(con, month, PEOPLE, day)
    assert _link(con) == "rebuilt"
    contract, key = CONTRACT, KEY
    if change == "another central key":
        key = Keyring("v1", b"j" * 32).central()
    elif change == "the register withdrawn":
        con.execute("DROP TABLE citizen_index")
    elif change == "a comment that is no ledger":
        con.execute(f"COMMENT ON TABLE {TABLE} IS '{{\"basis\": 1'")
    else:
        contract = dataclasses.replace(CONTRACT, version="0" * 64)
    assert _link(con, contract, key) == "rebuilt"
    assert _table(con) == _rebuilt(con, contract, key)
