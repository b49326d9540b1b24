"""Turn a delivery's raw strings into typed, pseudonymised rows, each tagged loadable or not.

One DuckDB query per dataset does the whole border in a single vectorised pass:
parse every column by its kind, validate personnummer (Luhn, date, century),
replace them by unit-scoped HMAC pseudonyms and linkage tokens, and give every
row that breaks a rule the first rule it breaks (and the column). The raw or
normalised personnummer is never materialised: only its pseudonyms are.

Free text (``Column.free_text``) is scanned in the same pass: a personnummer an
agent typed into it is masked or the value dropped, as the column says, and
counted in ``_identifiers``. A quarantined row's ``_raw_values`` (built only for
quarantined rows) masks every digit run that could be a personnummer in every
column, whatever its kind: a number typed into a date column must not reach
quarantine either.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.border.sql import hmac_sql
from pipelines.ingest import values
from pipelines.units.spec import Column, Csv, Dataset, FileFormat
from warehouse.layout import sql_texts

LINK_TOKEN = "_link_token"
IDENTIFIERS = "_identifiers"  # per row: personnummer (and contacts) found in free text and masked
FILE = "_file"  # which of the files staged together a row came from (a backfill's months, a month's days)
REF_YEAR = "_ref_year"  # the year of the row's delivery: a ten-digit personnummer's century counts from it
HITS = "_pnr_hits"  # the row's free-text runs that hold a personnummer (never stored)
BORDER_ONLY = f"{FILE}, _rule, _column, _raw_values, {IDENTIFIERS}"  # border output never stored as is


@dataclass(frozen=True)
class BorderQuery:
    """SQL over the raw frame ``raw`` (the source columns as text, ``_source_line``, ``_file`` and
    ``_ref_year``): typed rows with ``_file``, ``_rule``/``_column`` and safe ``_raw_values``."""

    sql: str
    loaded_columns: tuple[str, ...]


def border_query(dataset: Dataset, fmt: FileFormat) -> BorderQuery:
    """The border over ``raw``, which may hold many files, told apart by ``_file``: a duplicate row is
    one within its own file, as if each file were staged alone."""
    decimal_comma = isinstance(fmt, Csv) and fmt.decimal_comma
    typed, loaded = ["_source_line"], []
    for col in dataset.columns:
        exprs = _typed(col, decimal_comma)
        typed += [f"{sql} AS {_parsed(name)}" for name, sql in exprs.items()]
        loaded += [name for name in exprs if not name.startswith("_")]
    rules = [("_occurrence > 1", "duplicate_row", "*")] + [r for c in dataset.columns for r in _rules(c)]
    rule_case = "CASE " + " ".join(f"WHEN {cond} THEN '{rule}'" for cond, rule, _ in rules) + " END"
    column_case = "CASE " + " ".join(f"WHEN {cond} THEN '{column}'" for cond, _, column in rules) + " END"
    person = dataset.person_column
    safe = [c for c in dataset.columns if c.kind not in ("personnummer", "identifier", "key")]
    raw_values = "to_json(struct_pack(" + ", ".join(f'"{c.source}" := {_raw_value(c)}' for c in safe) + "))"
    link = f", {_parsed(LINK_TOKEN)} AS {LINK_TOKEN}" if person else ""
    free = [f'"{c.source}"' for c in dataset.columns if c.free_text]
    # One scan over all free text of the row (a space keeps runs of two columns apart): the macro
    # is expanded once per query, not once per column.
    text = f"concat_ws(' ', {', '.join(free)})" if free else None
    # Each raw value trimmed once, for the typed columns and the rules alike.
    values = ", ".join(f"nullif(trim(\"{c.source}\"), '') AS {_value(c)}" for c in dataset.columns)
    # Everything a personnummer or a free text gives is computed once per distinct value and joined
    # back: a case's events repeat its person and its case id (about seven rows each in ärendehändelser).
    joined = (
        f" LEFT JOIN persons ON coalesce(src.\"{person.source}\", '') = persons._pnr_raw"
        f" AND src.{REF_YEAR} = persons.{REF_YEAR}"
        if person
        else ""
    )
    joined += f" LEFT JOIN texts ON {text} = texts._text" if free else ""
    sql = f"""
        WITH src AS (
            SELECT *, row_number() OVER (
                    PARTITION BY {FILE}, {_all_source(dataset)} ORDER BY _source_line
                ) AS _occurrence
            FROM raw
        ),{_persons(person.source) if person else ""}{_texts(text) if free else ""}
        checked AS (
            SELECT src.*{f", persons.* EXCLUDE (_pnr_raw, {REF_YEAR})" if person else ""}{f", texts.{HITS}" if free else ""},
                {values}
            FROM src{joined}
        ),
        typed AS (SELECT *, {", ".join(typed)} FROM checked),
        ruled AS (SELECT *, {rule_case} AS _rule, {column_case} AS _column FROM typed)
        SELECT _source_line, {FILE}, {", ".join(f"{_parsed(n)} AS {n}" for n in loaded)}{link},
            CASE WHEN _rule IS NOT NULL THEN {raw_values} END AS _raw_values,
            _rule, _column, {_identifier_count(dataset)} AS {IDENTIFIERS}
        FROM ruled
    """
    return BorderQuery(sql, tuple(loaded))


def _persons(source: str) -> str:
    """CTE ``persons``: per distinct raw personnummer and delivery year, its validity and, if valid, its
    pseudonyms, birth year and sex. The normalised twelve digits exist only inside this query, never in
    its output."""
    return f"""
        persons AS (
            SELECT _pnr_raw, {REF_YEAR}, _pnr_ok,
                CASE WHEN _pnr_ok THEN {hmac_sql("_pnr12", "unit")} END AS _pnr_pseudonym,
                CASE WHEN _pnr_ok THEN _pnr_year END AS _pnr_birth_year,
                CASE WHEN _pnr_ok THEN pnr_sex(_p) END AS _pnr_sex,
                CASE WHEN _pnr_ok THEN {hmac_sql("_pnr12", "link")} END AS _pnr_link_token
            FROM (
                SELECT *, coalesce(pnr_valid_in(_p, _pnr_year), false) AS _pnr_ok,
                    pnr_twelve_in(_p, _pnr_year) AS _pnr12
                FROM (
                    SELECT *, pnr_year(_p, {REF_YEAR}) AS _pnr_year
                    FROM (SELECT _pnr_raw, {REF_YEAR}, pnr_parts(_pnr_raw) AS _p
                          FROM (SELECT DISTINCT coalesce("{source}", '') AS _pnr_raw, {REF_YEAR} FROM raw))))
        ),"""


def _texts(text: str) -> str:
    """CTE ``texts``: per distinct free text of a row, the runs in it that hold a personnummer."""
    return f"""
        texts AS (SELECT _text, pnr_hits(_text) AS {HITS} FROM (SELECT DISTINCT {text} AS _text FROM raw)),"""


def _parsed(name: str) -> str:
    """A parsed value's name inside the query, apart from the source columns: DuckDB compares names
    without case, so a warehouse column named as its source (``Enhet`` loaded as ``enhet``) would
    otherwise be read back as the raw text, unparsed and, in free text, unmasked."""
    return f'"_parsed_{name}"'


def _value(col: Column) -> str:
    """The column's raw text, trimmed and empty as NULL (computed once per row in ``checked``)."""
    return f'"_value_{col.source}"'


def _typed(col: Column, decimal_comma: bool) -> dict[str, str]:
    raw = _value(col)
    match col.kind:
        case "personnummer":
            return {
                "person_pseudonym": "_pnr_pseudonym",
                "birth_year": "_pnr_birth_year",
                "sex": "_pnr_sex",
                "key_version": "CASE WHEN _pnr_ok THEN $key_version END",
                LINK_TOKEN: "_pnr_link_token",
            }
        case "key":
            return {f"{col.name}_key": f"CASE WHEN {raw} IS NOT NULL THEN {hmac_sql(raw, 'unit')} END"}
        case "identifier":
            return {}
        case "text":
            return {col.name: _free_text(col, raw) if col.free_text else raw}
        case "integer":
            return {col.name: f"TRY_CAST({raw} AS BIGINT)"}
        case "decimal":
            return {col.name: values.amount_sql(raw, decimal_comma)}
        case "date":
            return {col.name: values.date_sql(raw, col.format)}
        case "month":
            return {col.name: values.month_sql(raw)}
        case "timestamp":
            return {col.name: values.timestamp_sql(raw, col.format)}
        case "boolean":
            return {col.name: f"TRY_CAST({raw} AS BOOLEAN)"}
    raise ValueError(f"unknown column kind {col.kind!r} for {col.source}")


def _rules(col: Column) -> list[tuple[str, str, str]]:
    """(condition, rule, column) in the order they are judged; the first that holds wins."""
    raw = _value(col)
    rules = []
    if col.mandatory:
        rules.append((f"{raw} IS NULL", "missing_mandatory_value", col.source))
    if col.kind == "personnummer":
        rules.append((f"{raw} IS NOT NULL AND NOT _pnr_ok", "invalid_personnummer", col.source))
        return rules
    if col.kind in ("identifier", "key", "text"):
        parsed = None
    else:
        parsed = _parsed(col.name)
        rules.append((f"{raw} IS NOT NULL AND {parsed} IS NULL", f"not_a_{col.kind}", col.source))
    if col.minimum is not None:
        rules.append((f"{parsed} < {col.minimum}", "below_minimum", col.source))
    if col.maximum is not None:
        rules.append((f"{parsed} > {col.maximum}", "above_maximum", col.source))
    if col.allowed:
        rules.append((f"{raw} NOT IN {sql_texts(col.allowed)}", "value_not_allowed", col.source))
    return rules


def _free_text(col: Column, value: str) -> str:
    """The value with identifiers masked, or NULL if it held any and the column says drop."""
    if col.on_identifier == "drop":
        found = f"pnr_masked({value}, {HITS}) IS DISTINCT FROM {value}"
        found += f" OR contacts_count({value}) > 0" if col.scan_contacts else ""
        return f"CASE WHEN {found} THEN NULL ELSE {value} END"
    masked = f"pnr_masked({value}, {HITS})"
    return f"contacts_masked({masked})" if col.scan_contacts else masked


def _raw_value(col: Column) -> str:
    """What quarantine keeps of a column: every run that could be a personnummer masked, without
    asking the check digit (a steward finds the row by file and line), free text as it is loaded."""
    source = f'"{col.source}"'
    if col.free_text and col.on_identifier == "drop":
        return _free_text(col, source)
    masked = f"pnr_candidates_masked({source})"
    return f"contacts_masked({masked})" if col.free_text and col.scan_contacts else masked


def _identifier_count(dataset: Dataset) -> str:
    """Identifiers found in the row's free text, for the delivery's count (reconciliation)."""
    terms = [f"len({HITS})"] if any(c.free_text for c in dataset.columns) else []
    terms += [
        f'coalesce(contacts_count("{c.source}"), 0)'
        for c in dataset.columns
        if c.free_text and c.scan_contacts
    ]
    return " + ".join(terms) if terms else "0"


def _all_source(dataset: Dataset) -> str:
    return ", ".join(f'"{c.source}"' for c in dataset.columns)
