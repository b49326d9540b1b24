"""Control totals: a manifest the contract names is checked against the file, and a mismatch holds.

The corpus's good aid delivery (two rows, 4 512,50 and 1 200,75 kronor) comes with a manifest that
states its count and sum (the sum written as the file writes amounts, with a no-break space), or, in
each probe, not quite.
"""

import json
import shutil
from dataclasses import replace

import duckdb
import pytest

from pipelines.defs.unit_checks import check_deliveries
from pipelines.ingest.delivery import load_deliveries
from pipelines.units.load import DEFAULT_DIR, ContractError, read_units
from pipelines.units.spec import ControlTotals
from tests.conftest import SOCIAL
from tests.corpus import GOOD, write_good

MONTH = "2024-03"
AID = "ekonomiskt_bistand"
MANIFEST = "ekonomiskt_bistand.kontroll.json"
UNIT = replace(
    SOCIAL,
    datasets=tuple(
        replace(ds, control_totals=ControlTotals(MANIFEST, "antal_poster", (("Belopp", "summa_belopp"),)))
        if ds.name == AID
        else ds
        for ds in SOCIAL.datasets
    ),
)


def _good_sum() -> float:
    return sum(
        float(r["Belopp"].replace("\u00a0", "").replace(" ", "").replace(",", "."))
        for r in GOOD["socialtjanst"][AID]
    )


def _verdict(home, warehouse, keys, manifest: dict | str | None) -> str | None:
    """The reconciliation check's description for the month (None: it passed)."""
    write_good(home, "socialtjanst", MONTH)
    folder = home.delivery_dir("socialtjanst", MONTH)
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest, ensure_ascii=False)
        (folder / MANIFEST).write_text(text, encoding="utf-8")
    for _ in load_deliveries(UNIT, [MONTH], home.landing, warehouse, keys):
        pass
    [reconciliation] = [
        e for e in check_deliveries(UNIT, [MONTH], home, warehouse) if e.check_name == "reconciliation"
    ]
    with duckdb.connect(str(warehouse.unit_zone("socialtjanst")), read_only=True) as con:
        held = con.execute("SELECT checks FROM held_deliveries WHERE _delivery = $m", {"m": MONTH}).fetchall()
    assert bool(held) == (not reconciliation.passed), "a failed reconciliation holds the delivery"
    return reconciliation.description if not reconciliation.passed else None


def test_a_delivery_that_agrees_with_its_manifest_is_released(home, warehouse, keys):
    rows = len(GOOD["socialtjanst"][AID])
    as_written = f"{_good_sum():,.2f}".replace(",", "\u00a0").replace(".", ",")  # "5 713,25"
    assert _verdict(home, warehouse, keys, {"antal_poster": rows, "summa_belopp": as_written}) is None


@pytest.mark.parametrize(
    ("manifest", "says"),
    [
        (None, "the delivery has none"),
        ({"antal_poster": 99, "summa_belopp": "SUM"}, "records, ekonomiskt_bistand.kontroll.json says 99"),
        ({"antal_poster": "ROWS", "summa_belopp": 1.0}, "Belopp sums to"),
        ({"antal_poster": "ROWS"}, "no summa_belopp"),
        ("antal_poster=4", "not a JSON manifest"),
    ],
    ids=["missing", "rows", "sum", "key", "not_json"],
)
def test_a_delivery_that_disagrees_with_its_manifest_is_held_and_says_why(
    home, warehouse, keys, manifest, says
):
    rows = len(GOOD["socialtjanst"][AID])
    if isinstance(manifest, dict):
        manifest = {k: {"ROWS": rows, "SUM": _good_sum()}.get(v, v) for k, v in manifest.items()}
    description = _verdict(home, warehouse, keys, manifest)
    assert description is not None and says in description, description


def test_the_contract_names_the_manifest_and_its_sums_are_of_amount_columns(tmp_path):
    folder = tmp_path / "contracts"
    shutil.copytree(DEFAULT_DIR, folder)
    path = folder / "socialtjanst.ekonomiskt_bistand.yaml"
    text = path.read_text(encoding="utf-8")
    block = "  control_totals: {manifest: aid.json, rows: antal, sums: {Belopp: summa}}\n"
    path.write_text(text.replace("delivery:\n", "delivery:\n" + block), encoding="utf-8")
    totals = read_units(folder)["socialtjanst"].dataset(AID).control_totals
    assert totals == ControlTotals("aid.json", "antal", (("Belopp", "summa"),))
    path.write_text(text.replace("delivery:\n", "delivery:\n" + block.replace("Belopp", "Hushållstyp")))
    with pytest.raises(ContractError, match="Hushållstyp is not an integer or decimal source column"):
        read_units(folder)
