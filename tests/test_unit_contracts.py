"""A unit's delivery contract is data: the YAML file per dataset, read into ``Unit``; a broken one names file and key.

Each test edits a copy of the repository's contracts the way a person would (a typo, a missing block, two
files of one unit that disagree) and reads it as the platform does.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.stewardship.contracts import load_contracts
from pipelines.units import UNITS, ContractError
from pipelines.units.load import DEFAULT_DIR, read_units
from pipelines.units.spec import Csv
from tests.conftest import KNUTPUNKT


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULT_DIR, tmp_path / "contracts")
    return tmp_path / "contracts"


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _refused(folder: Path, message: str) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        read_units(folder)


def test_the_repository_contracts_give_every_unit_its_delivery_spec():
    social = UNITS["socialtjanst"]
    assert list(UNITS)[0] == "folkbokforing", "units.yaml's order: the register first"
    assert [d.name for d in social.datasets] == ["ekonomiskt_bistand", "barnutredningar"]
    assert social.format == Csv(encoding="cp1252", separator=";", decimal_comma=True)
    assert social.personnummer_style == "ten_separator"
    aid = social.dataset("ekonomiskt_bistand")
    assert aid.column("amount_sek").maximum == 100_000 and aid.natural_key == ("person_pseudonym", "month")
    assert social.dataset("barnutredningar").may_be_empty
    assert UNITS["skola"].dataset("meritvarde").delivered_in_months == (7,)
    assert UNITS["kontaktcenter"].dataset("kontakter").column("topic").scan_contacts
    register = UNITS["folkbokforing"].dataset("aviseringar")
    assert [c.source for c in register.columns if c.kind == "identifier"] == [
        "fornamn",
        "efternamn",
        "adress",
    ]
    assert read_units(DEFAULT_DIR) == UNITS, "UNITS is the package's contracts, read once"


def test_an_unknown_column_kind_names_the_file_the_column_and_the_kinds(contracts):
    _edit(
        contracts,
        "skola.meritvarde.yaml",
        "name: merit_value, kind: decimal",
        "name: merit_value, kind: float",
    )
    _refused(
        contracts, "skola.meritvarde.yaml: delivery.source_columns[2].kind 'float' is not one of personnummer"
    )


def test_a_missing_format_is_refused(contracts):
    _edit(
        contracts,
        "ekonomi.utfall.yaml",
        '  format: {type: csv, encoding: cp1252, separator: ";", decimal_comma: true}\n',
        "",
    )
    _refused(contracts, "ekonomi.utfall.yaml: unit.format is missing")


def test_a_format_key_of_another_file_type_is_refused(contracts):
    _edit(
        contracts,
        "e_tjanster.inlamningar.yaml",
        "format: {type: jsonl}",
        "format: {type: jsonl, sheet: Blad1}",
    )
    _refused(contracts, "e_tjanster.inlamningar.yaml: unknown key sheet in unit.format")


def test_datasets_of_one_unit_that_disagree_on_the_unit_are_refused(contracts):
    _edit(contracts, "skola.franvaro.yaml", "encoding: utf-8-sig", "encoding: utf-8")
    _refused(contracts, "skola.franvaro.yaml: unit.format differs from skola.inskrivning.yaml")
    _edit(contracts, "skola.franvaro.yaml", "encoding: utf-8", "encoding: utf-8-sig")
    _edit(
        contracts,
        "skola.meritvarde.yaml",
        "forvaltning: Utbildningsförvaltningen",
        "forvaltning: Skolkontoret",
    )
    _refused(contracts, "skola.meritvarde.yaml: unit.forvaltning differs from skola.inskrivning.yaml")


def test_a_misspelt_rule_is_refused_not_dropped(contracts):
    """`maxium` read as unknown and ignored would load any value: the rule would be gone without a word."""
    _edit(contracts, "skola.inskrivning.yaml", "min: 0, max: 9", "min: 0, maxium: 9")
    _refused(contracts, "skola.inskrivning.yaml: unknown key maxium in delivery.source_columns[2]")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("kind: decimal, min: 0, max: 340", "kind: text, min: 0, max: 340", "min and max apply to integer"),
        ("max: 340", "max: true", "delivery.source_columns[2].max must be int or float, not True"),
        ("delivered_in_months: [7]", "delivered_in_months: [13]", "delivered_in_months: months are numbers"),
        ("  personnummer_style: twelve\n", "", "unit.personnummer_style is missing; the unit delivers"),
    ],
)
def test_rules_that_cannot_mean_anything_are_refused(contracts, old, new, message):
    for name in ("skola.inskrivning.yaml", "skola.franvaro.yaml", "skola.meritvarde.yaml"):
        if old in (contracts / name).read_text(encoding="utf-8"):
            _edit(contracts, name, old, new)
    _refused(contracts, message)


def test_a_contract_missing_from_the_index_or_its_file_is_refused(contracts):
    shutil.copy(contracts / "ekonomi.utfall.yaml", contracts / "ekonomi.prognos.yaml")
    _refused(contracts, "units.yaml: does not list the contracts ekonomi.prognos.yaml")
    (contracts / "ekonomi.prognos.yaml").unlink()
    (contracts / "ekonomi.utfall.yaml").unlink()
    _refused(contracts, "units.yaml: lists ekonomi.utfall, but ekonomi.utfall.yaml does not exist")


def test_a_governance_typo_is_refused_where_contracts_are_read(contracts):
    _edit(contracts, "ekonomi.utfall.yaml", "owner:", "owners:")
    with pytest.raises(ContractError, match=re.escape("ekonomi.utfall.yaml: unknown key owners")):
        load_contracts(contracts)


def test_an_edited_delivery_rule_is_a_new_version_to_approve(contracts):
    """The version covers the delivery blocks too: what the border loads is what the steward approved."""
    before = load_contracts(contracts)
    _edit(contracts, "socialtjanst.ekonomiskt_bistand.yaml", "max: 100000", "max: 200000")
    _edit(
        contracts,
        "skola.meritvarde.yaml",
        "  source_columns:",
        "  # a comment is not content\n  source_columns:",
    )
    after = load_contracts(contracts)
    changed = {key for key in before if before[key].version != after[key].version}
    assert changed == {"socialtjanst.ekonomiskt_bistand"}
    assert (
        read_units(contracts)["socialtjanst"].dataset("ekonomiskt_bistand").column("amount_sek").maximum
        == 200_000
    )


def test_the_command_names_a_broken_contract_in_one_line(contracts, tmp_path):
    """As a user runs it, from outside the repository: the message, not a traceback."""
    _edit(
        contracts,
        "skola.meritvarde.yaml",
        "name: merit_value, kind: decimal",
        "name: merit_value, kind: float",
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {
        "KNUTPUNKT_CONTRACTS": str(contracts),
        "KNUTPUNKT_HOME": str(tmp_path / "home"),
        "KNUTPUNKT_KEY_FILE": str(tmp_path / "key"),
    }
    done = subprocess.run(
        [str(KNUTPUNKT), "steward", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "skola.meritvarde.yaml: delivery.source_columns[2].kind 'float'" in " ".join(done.stderr.split())


def test_a_date_column_written_as_excel_serials_is_read_and_a_bad_format_names_file_and_key(contracts):
    name = "socialtjanst.barnutredningar.yaml"
    _edit(contracts, name, "kind: date}", "kind: date, format: excel_serial}")
    start = read_units(contracts)["socialtjanst"].dataset("barnutredningar").column("start_date")
    assert start.format == "excel_serial"
    assert UNITS["socialtjanst"].dataset("barnutredningar").column("start_date").format == "iso", (
        "the default"
    )

    _edit(contracts, name, "format: excel_serial", "format: excel")
    _refused(
        contracts,
        f"{name}: delivery.source_columns[1].format 'excel' is not one of iso, excel_serial",
    )
    _edit(contracts, name, "format: excel", "format: 45292")
    _refused(contracts, f"{name}: delivery.source_columns[1].format must be str, not 45292")
    _edit(contracts, name, ", format: 45292", "")
    _edit(contracts, name, "kind: text, allowed", "kind: text, format: iso, allowed")
    _refused(
        contracts, f"{name}: delivery.source_columns[3] (Anledning): format applies to date and timestamp"
    )
