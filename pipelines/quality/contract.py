"""A unit's expectation suite, derived from its delivery spec, and the committed JSON file of it.

The dataset contracts (``pipelines/units/contracts/<unit>.<dataset>.yaml``, read
into the unit spec by :mod:`pipelines.units.load`) are the one source of the
column rules and natural keys; this module adds what only a delivery as a whole
can show (file read against the contract, systematic breakage, volume against
earlier deliveries, natural-key uniqueness, date sanity) and writes the result as
``pipelines/units/expectations/<unit>.json``. The checks build the suite from the
contract when they run (``validate.Validator``), so a new or edited contract is checked
by its own rules with no step in between; the JSON is versioned in the repository so
that a change of contract shows in review as the expectations it changes, and a test
asserts it equals what this module generates. Regenerate with
``python -m pipelines.quality.contract``.

Severities follow GX: ``critical`` fails the delivery (Dagster ERROR, blocking),
``warning`` is shown and does not block (Dagster WARN).

Each dataset has three parts, all judged on one summary row per delivery
(see :mod:`pipelines.quality.frame`), so one GX run judges many deliveries and
names each one that fails. ``all_rows`` counts, among every row of the file
(loaded, or quarantined with ``_rule`` and ``_defect`` = ``rule:column``), the
rows that break a rule of the file; ``loaded_rows`` counts, among the typed rows
downstream relies on, those that break a column rule or share a natural key.
Each of their expectations says a count is 0, and its ``rows_where`` (the SQL
condition) is what is counted: one DuckDB pass over the stored rows, instead
of every row read into pandas for GX (which cost as much as loading them).
``delivery`` judges the delivery as a whole on the same row: rows, share
broken, rows quarantined, the first and last date of each date column, and the
delivery's own values (volume floor, date window) as columns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pipelines.ingest.read import FILE_RULES
from pipelines.ingest.transform import _rules as row_rules
from pipelines.settings import REPO_ROOT
from pipelines.units import UNITS, Column, ContractError, Dataset, Unit
from pipelines.units.load import DEFAULT_DIR
from warehouse.layout import sql_name, sql_texts

SUITE_VERSION = 4
EXPECTATIONS_DIR = Path(__file__).resolve().parents[1] / "units" / "expectations"
ALL_ROWS, LOADED_ROWS, DELIVERY = "all_rows", "loaded_rows", "delivery"
PARTS = (ALL_ROWS, LOADED_ROWS, DELIVERY)
PSEUDONYM = r"^[0-9a-f]{64}$"
SYSTEMATIC_SHARE = 0.5  # more than half of a file's rows broken: the file is wrong, not the rows
HOLDS = " A quarantined row holds the delivery (quarantine_holds)."


def suite_name(unit: Unit, dataset: Dataset) -> str:
    return f"{unit.name}.{dataset.name}"


def suite_path(unit: str) -> Path:
    return EXPECTATIONS_DIR / f"{unit}.json"


def build_contract(unit: Unit) -> dict[str, Any]:
    """The JSON-able contract of one unit: a suite per dataset."""
    return {
        "unit": unit.name,
        "version": SUITE_VERSION,
        "generated_from": [
            *(_contract_file(unit, ds) for ds in unit.datasets),
            "pipelines/quality/contract.py",
        ],
        "severity": {
            "critical": "ERROR: blocks the unit's downstream",
            "warning": "WARN: shown, not blocking",
        },
        "delivery_summary": {
            "rows": "rows in the file (loaded and quarantined)",
            "share_broken": "share of the rows that break a rule",
            "rows_quarantined": "rows quarantined",
            "first_<column>, last_<column>": "earliest and latest value of a date column in the loaded rows",
            "min_rows": "half the median rows of the last 6 deliveries of the dataset "
            "(0 with fewer than 3, or a median under 20)",
            "earliest": "1900-01-01",
            "latest": "the last moment of the delivery month",
            "month_start": "the first day of the delivery month",
        },
        "suites": {
            suite_name(unit, ds): {
                "natural_key": list(natural_key(unit, ds)),
                ALL_ROWS: all_rows(unit, ds),
                LOADED_ROWS: loaded_rows(unit, ds),
                DELIVERY: delivery(ds),
            }
            for ds in unit.datasets
        },
    }


def _contract_file(unit: Unit, dataset: Dataset) -> str:
    return (DEFAULT_DIR / f"{suite_name(unit, dataset)}.yaml").relative_to(REPO_ROOT).as_posix()


def natural_key(unit: Unit, dataset: Dataset) -> tuple[str, ...]:
    key = dataset.natural_key
    loaded = set(loaded_columns(dataset))
    if missing := [c for c in key if c not in loaded]:
        raise ContractError(
            f"{suite_name(unit, dataset)}.yaml: delivery.natural_key names {missing}, "
            f"which are not loaded columns ({', '.join(loaded)})"
        )
    return key


def loaded_columns(dataset: Dataset) -> list[str]:
    """Warehouse columns of a dataset, as the border query names them."""
    names: list[str] = []
    for col in dataset.columns:
        match col.kind:
            case "personnummer":
                names += ["person_pseudonym", "birth_year", "sex", "key_version"]
            case "key":
                names.append(f"{col.name}_key")
            case "identifier":
                pass
            case _:
                names.append(col.name)
    return names


def all_rows(unit: Unit, dataset: Dataset) -> list[dict[str, Any]]:
    """The file read against the contract, and the row rules as the border judged them."""
    labels = ["duplicate_row:*"] + [
        f"{rule}:{column}" for c in dataset.columns for _, rule, column in row_rules(c)
    ]
    return [
        _count(
            "file_rule:_rule",
            f"_rule IN {sql_texts(FILE_RULES)}",
            "critical",
            "file_readable",
            "The file reads against the contract: bytes, encoding, delimiter, header, columns.",
        ),
        _count(
            "unknown_rule:_defect",
            f"_defect NOT IN {sql_texts([*labels, *(f'{r}:*' for r in FILE_RULES)])}",
            "critical",
            "known_rules",
            "Every quarantined row names a rule of this contract (rule:column), so suite and border agree.",
        ),
    ]


def delivery(dataset: Dataset) -> list[dict[str, Any]]:
    """What only the delivery as a whole shows, on its summary row: breakage, quarantine, volume, dates."""
    out = [
        _e(
            "expect_column_values_to_be_between",
            {"column": "share_broken", "min_value": 0, "max_value": SYSTEMATIC_SHARE},
            "critical",
            "not_systematically_broken",
            "At most half of the rows break a rule; more means the file is wrong (format, columns shifted).",
        ),
        _e(
            "expect_column_values_to_be_between",
            {"column": "rows_quarantined", "min_value": 0, "max_value": 0},
            "critical" if dataset.quarantine_holds else "warning",
            "rows_quarantined",
            "No row quarantined (mandatory, type, range, value set, personnummer, duplicate); "
            "which rule and line: the quarantine table and the check's metadata."
            + HOLDS
            * dataset.quarantine_holds,
        ),
        _pair(
            "rows",
            "min_rows",
            "warning",
            "volume",
            "At least half the usual rows (last 6 deliveries' median).",
        ),
    ]
    out[-1]["meta"]["observed"] = "rows"  # the check's description says how many rows came
    for col in dataset.columns:
        name = f"{col.name}_key" if col.kind == "key" else col.name
        if col.kind in ("date", "timestamp"):
            why = f"{col.source} is not in the future of the delivery month, nor before 1900."
            out.append(_pair("latest", f"last_{name}", "warning", "date_sanity", why, col.source))
            out.append(_pair(f"first_{name}", "earliest", "warning", "date_sanity", why, col.source))
        if col.kind == "month":
            why = f"{col.source} is the delivery month."
            out.append(_pair("month_start", f"last_{name}", "warning", "date_sanity", why, col.source))
            out.append(_pair(f"first_{name}", "month_start", "warning", "date_sanity", why, col.source))
    return out


def dated_columns(suite: dict[str, Any]) -> list[str]:
    """The date columns whose first and last values a suite's delivery summary needs."""
    names = []
    for e in suite[DELIVERY]:
        for key in ("column_A", "column_B"):
            column = e["kwargs"].get(key, "")
            if column.startswith("last_"):
                names.append(column.removeprefix("last_"))
    return names


def _pair(a: str, b: str, severity: str, rule: str, why: str, column: str | None = None) -> dict[str, Any]:
    """``a >= b`` on the delivery summary (a missing value, e.g. no loaded rows, is not judged)."""
    kwargs = {"column_A": a, "column_B": b, "or_equal": True, "ignore_row_if": "either_value_is_missing"}
    return _e("expect_column_pair_values_a_to_be_greater_than_b", kwargs, severity, rule, why, column)


def loaded_rows(unit: Unit, dataset: Dataset) -> list[dict[str, Any]]:
    """What every loaded row satisfies: the spec's column rules on typed values, and the natural key."""
    out = [e for col in dataset.columns for e in _loaded_column(col)]
    key = list(natural_key(unit, dataset))
    unique = _count(
        f"duplicate_key:{','.join(key)}",
        None,
        "critical",
        "natural_key_unique",
        f"One loaded row per ({', '.join(key)}) in a delivery: rows whose key another row has are counted.",
    )
    unique["meta"]["duplicate_key"] = key
    return [*out, unique]


def _loaded_column(col: Column) -> list[dict[str, Any]]:
    """The border's rules again, on the typed loaded values (defence in depth: counted from what was
    stored, not from the border's verdicts)."""
    if col.kind == "identifier":
        return []
    if col.kind == "personnummer":
        pseudonym = sql_name("person_pseudonym")
        valid = _count(
            "null:person_pseudonym",
            f"{pseudonym} IS NULL",
            "critical",
            "personnummer_valid",
            f"Every loaded row has a valid {col.source} (Luhn, date), checked before pseudonymisation.",
            col.source,
        )
        pseudonymised = _count(
            "not_pseudonym:person_pseudonym",
            f"NOT regexp_full_match({pseudonym}, '{PSEUDONYM}')",
            "critical",
            "pseudonymised",
            "Only HMAC-SHA256 pseudonyms are stored, never a personnummer.",
            col.source,
        )
        return [valid, pseudonymised] if col.mandatory else [pseudonymised]
    name = f"{col.name}_key" if col.kind == "key" else col.name
    out = []
    if col.mandatory:
        why = f"{col.source} is mandatory."
        out.append(
            _count(f"null:{name}", f"{sql_name(name)} IS NULL", "critical", "mandatory", why, col.source)
        )
    if col.minimum is not None or col.maximum is not None:
        bounds = [
            f"{sql_name(name)} {op} {float(v)!r}"
            for op, v in (("<", col.minimum), (">", col.maximum))
            if v is not None
        ]
        why = f"{col.source} within [{col.minimum}, {col.maximum}]."
        out.append(_count(f"out_of_range:{name}", " OR ".join(bounds), "critical", "range", why, col.source))
    if col.allowed:
        why = f"{col.source} is one of the contract's values."
        where = f"{sql_name(name)} NOT IN {sql_texts(col.allowed)}"
        out.append(_count(f"not_allowed:{name}", where, "critical", "allowed_values", why, col.source))
    return out


def _count(
    label: str, where: str | None, severity: str, rule: str, why: str, column: str | None = None
) -> dict[str, Any]:
    """No row of the part is ``where``: the summary's column ``label`` counts them, and must be 0."""
    e = _e(
        "expect_column_values_to_be_between",
        {"column": label, "min_value": 0, "max_value": 0},
        severity,
        rule,
        why,
        column,
    )
    if where is not None:
        e["meta"]["rows_where"] = where
    return e


def _e(
    type_: str, kwargs: dict, severity: str, rule: str, why: str, column: str | None = None
) -> dict[str, Any]:
    meta = {"rule": rule, "why": why} | ({"column": column} if column else {})
    return {"type": type_, "kwargs": kwargs, "severity": severity, "meta": meta}


def render(contract: dict[str, Any]) -> str:
    return json.dumps(contract, indent=2, ensure_ascii=False) + "\n"


def write_all() -> list[Path]:
    EXPECTATIONS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for unit in UNITS.values():
        path = suite_path(unit.name)
        path.write_text(render(build_contract(unit)), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(p, file=sys.stderr)
