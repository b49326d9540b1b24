"""Personnummer typed into free text: masked (or dropped) at the border, counted, never stored.

Probe of issue 12: ``Samtal om 19821105-9954`` in the contact centre's topic
column was loaded as is, and a quarantined row kept it in ``raw_values``. The
numbers planted here are valid by the ``personnummer`` package (the oracle),
written in every form an agent might type them, in loaded and quarantined rows.
"""

import dataclasses
import os
import random

import duckdb
import polars as pl
from personnummer import personnummer as oracle

from pipelines.border.keys import Keyring
from pipelines.border.sql import hmac_params, install_macros
from pipelines.ingest.delivery import load_delivery
from pipelines.ingest.transform import IDENTIFIERS, border_query
from pipelines.units import UNITS
from tests.conftest import write_csv
from tests.leaks import forms_in_landing, hits_in_duckdb, hits_in_files

CONTACTS = UNITS["kontaktcenter"]
DELIVERY = "2024-03"


def _luhn(digits: str) -> int:
    total = sum(sum(divmod(int(d) * (2 - i % 2), 10)) for i, d in enumerate(digits))
    return (10 - total % 10) % 10


def _valid_numbers(rng: random.Random, n: int) -> list[oracle.Personnummer]:
    """Valid personnummer and samordningsnummer, some aged 100 or more, as the oracle parses them."""
    found = []
    while len(found) < n:
        year, month, day = rng.randint(1915, 2020), rng.randint(1, 12), rng.randint(1, 28)
        day += 60 if len(found) % 4 == 3 else 0  # every fourth a samordningsnummer
        ten = f"{year % 100:02d}{month:02d}{day:02d}{rng.randint(1, 999):03d}"
        twelve = f"{year}{ten[2:]}{_luhn(ten)}"
        try:
            found.append(oracle.parse(twelve))
        except oracle.PersonnummerException:
            continue
    return found


def _written_forms(pnr: oracle.Personnummer) -> list[str]:
    """YYYYMMDD-NNNN, YYYYMMDDNNNN, YYMMDD-NNNN (or + from 100), YYMMDDNNNN."""
    twelve = pnr.format(True).replace("-", "").replace("+", "")
    ten = pnr.format(False)  # YYMMDD-NNNC, with '+' from the age of 100
    return [f"{twelve[:8]}-{twelve[8:]}", twelve, ten, ten.replace("-", "").replace("+", "")]


def _contact(line: int, topic: str, channel: str = "telefon", at: str = "2024-03-05 10:00:00") -> list[str]:
    return [f"KC{line:08d}", at, channel, topic, "", "true"]


def test_personnummer_in_free_text_never_reaches_the_zone_or_quarantine(home, warehouse, keys):
    numbers = _valid_numbers(random.Random(12), 12)
    forms = [f for pnr in numbers for f in _written_forms(pnr)]
    templates = ["Samtal om {}", "{}", "ringde för ({}) om faktura", "pnr:{}.", "Ärende för {} och granne"]
    rows = [_contact(i, templates[i % len(templates)].format(f)) for i, f in enumerate(forms)]
    # Quarantined rows: a channel not in the contract, a number where a timestamp belongs.
    rows.append(_contact(900, f"Brev från {forms[0]}", channel="brev"))
    rows.append(_contact(901, "Felanmälan", at=forms[1]))
    rows.append(_contact(902, f"mejl anna.berg@example.se; ring 070-123 45 67 om {forms[2]}"))
    rows.append(_contact(903, "Faktura 8211059955 och ärende KC00001234"))  # fails the check digit
    write_csv(home, CONTACTS, DELIVERY, "kontakter", rows)

    [result] = load_delivery(CONTACTS, DELIVERY, home.landing, warehouse, keys)
    assert (result.rows_loaded, result.rows_quarantined) == (len(rows) - 2, 2)

    # The leak scan takes every run of ten digits for a number; the border masks check-digit valid ones.
    planted = forms_in_landing(home.landing) - {"8211059955"}
    assert set(forms) <= planted and hits_in_files(home.landing, planted), "the scan must see the plants"
    leaks = hits_in_files(home.home, planted, skip=(home.landing,))
    for zone in warehouse.files():
        leaks |= hits_in_duckdb(zone, planted)
    assert leaks == {}

    with duckdb.connect(str(warehouse.unit_zone("kontaktcenter")), read_only=True) as con:
        topics = dict(con.execute("SELECT contact_id, topic FROM kontakter").fetchall())
        masked = con.execute("SELECT identifiers_masked FROM reconciliation").fetchall()
        raw = [r for (r,) in con.execute("SELECT raw_values::VARCHAR FROM quarantine ORDER BY 1").fetchall()]
    assert topics["KC00000000"] == "Samtal om <personnummer>"
    assert topics["KC00000902"] == "mejl <e-post>; ring <telefon> om <personnummer>"
    assert topics["KC00000903"] == "Faktura 8211059955 och ärende KC00001234", "no false hit"
    assert masked == [(len(forms) + 1 + 3,)], "every hit is counted in the delivery's reconciliation"
    assert any("<personnummer>" in r for r in raw) and not any("example.se" in r for r in raw)


def test_a_column_can_drop_a_value_that_holds_an_identifier():
    dataset = CONTACTS.dataset("kontakter")
    columns = tuple(
        dataclasses.replace(c, on_identifier="drop") if c.source == "amne" else c for c in dataset.columns
    )
    query = border_query(dataclasses.replace(dataset, columns=columns), CONTACTS.format)
    raw = pl.DataFrame(
        [_contact(1, "Samtal om 121212+1212"), _contact(2, "Bygglov"), _contact(3, "tel 08-123 456 78")],
        schema=[c.source for c in dataset.columns],
        orient="row",
    ).with_row_index("_source_line", offset=2)
    staged = raw.with_columns(pl.col("_source_line").cast(pl.Int64), _file=0, _ref_year=2024)
    with duckdb.connect() as con:
        install_macros(con)
        con.register("raw", staged)
        keys = Keyring("v1", os.urandom(32))
        bound = hmac_params("unit", keys.unit("kontaktcenter")) | hmac_params("link", keys.link())
        bound |= {"key_version": "v1"}
        sql = f"SELECT topic, {IDENTIFIERS} FROM ({query.sql}) ORDER BY _source_line"
        rows = con.execute(sql, bound).fetchall()
    assert rows == [(None, 1), ("Bygglov", 0), (None, 1)]


def test_free_text_named_as_its_source_column_is_masked_and_typed_values_are_parsed(home, warehouse, keys):
    """ekonomi's ``Enhet`` is loaded as ``enhet``: DuckDB compares names without case, so the border
    once read the raw text back under that name, a personnummer typed into it unmasked (and an
    amount named as its source column loaded as text)."""
    unit = UNITS["ekonomi"]
    [enhet] = [c for c in unit.dataset("utfall").columns if c.source == "Enhet"]
    assert enhet.free_text and enhet.name.lower() == enhet.source.lower()
    budget = dataclasses.replace(unit.dataset("utfall").column("budget_sek"), name="budget")
    columns = tuple(budget if c.name == "budget_sek" else c for c in unit.dataset("utfall").columns)
    unit = dataclasses.replace(unit, datasets=(dataclasses.replace(unit.dataset("utfall"), columns=columns),))
    row = ["2024-03", "Socialförvaltningen", "Enhet 811218-9876", "30 000,00", "1,00", "2,00"]
    write_csv(home, unit, "2024-03", "utfall", [row])
    [result] = load_delivery(unit, "2024-03", home.landing, warehouse, keys)
    assert (result.rows_loaded, result.identifiers_masked) == (1, 1)
    with duckdb.connect(str(warehouse.unit_zone("ekonomi")), read_only=True) as con:
        assert con.execute("SELECT enhet, budget FROM utfall").fetchall() == [
            ("Enhet <personnummer>", 30000.0)
        ]


def test_a_run_of_ten_digits_with_any_separators_is_scanned_and_a_case_number_is_not():
    """``pnr_hits`` skips text without ten digits in one run (most rows: an eight-digit case number) and
    still finds a personnummer however an agent split it with '-' or '+'."""
    con = duckdb.connect()
    install_macros(con)
    pnr = "830907-6639"
    assert oracle.valid(pnr)
    texts = {
        f"ring {pnr[:3]}-{pnr[3:]} nu": ["830-907-6639"],
        "order 12345678 och 8309--07+6639": ["8309--07+6639"],
        "KC00044485 om 19830907-6639": ["19830907-6639"],
        "KC00044485 Avfall och återvinning": [],
        "830907-663": [],
    }
    for text, hits in texts.items():
        assert con.execute("SELECT pnr_hits(?)", [text]).fetchall()[0][0] == hits, text
