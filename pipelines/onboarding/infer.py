"""Propose a unit's delivery contract from a sample export: its file format and each column's kind.

Every decision comes with the evidence it rests on (one line each, ``separator ';' — 412 of 412
records have 6 fields``), since a steward completes and approves the draft and must be able to see
why a column was judged a personnummer, or a name to drop. The values are judged by the border's
own code, not a second reading of them: the sample is read by :mod:`pipelines.ingest.read` (so a
Parquet timestamp or an Excel date cell is the text the border will parse), amounts, dates and
timestamps by the SQL of :mod:`pipelines.ingest.values`, personnummer by the macros of
:mod:`pipelines.border.sql`. A kind proposed here therefore parses at the border as it did here.

Excel serial dates (numbers in Excel's day-number range under a date-like header, as a CSV exported
from Excel or a sheet's number cells hold them) are proposed as dates, or timestamps where a value
has a time of day, with ``format: excel_serial``; a sheet's date cells are read as ISO dates.

Not inferred: ``min``/``max`` (ranges are policy, left for the steward; the sample's range is
shown), ``key`` columns (a household id looks like any other code), dates in other spellings than
ISO and Excel serials (the border does not read them: reported, proposed as text).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb
import polars as pl

from pipelines.border.sql import install_macros
from pipelines.ingest import values
from pipelines.ingest.read import PERSONNUMMER_LIKE, SEPARATORS, file_columns, read_delivery_file
from pipelines.units.load import NAME
from pipelines.units.spec import (
    Column,
    ColumnKind,
    Csv,
    Dataset,
    DateFormat,
    Encoding,
    FileFormat,
    JsonLines,
    Parquet,
    PersonnummerStyle,
    Unit,
    Xlsx,
)
from warehouse.layout import sql_name

TODO = "TODO"
DESCRIPTION = f"{TODO} what one row is"
BINARY_FORMATS: dict[str, FileFormat] = {"parquet": Parquet(), "jsonl": JsonLines(), "xlsx": Xlsx()}
# A column is personnummer when at least this share of its values validate (Luhn, a real date): a
# personnummer loaded as text is the worse mistake, so the bar is low and the share is shown.
PERSONNUMMER_SHARE = 0.5
# A column mostly of one kind is proposed as that kind; the values that do not parse are reported
# (they would be quarantined), since a valid export rarely holds a few broken values by design.
MOSTLY = 0.9
# A text column is a code with an allowed set when it has few distinct values, each seen twice on
# average; otherwise it is free text (scanned for personnummer at the border).
MAX_CODES = 20
# Headers that name a person's name or address (lower case, without diacritics or separators): these
# exactly, or ending in a suffix (gatuadress, postadress, e-postadress, sokandes_fornamn).
IDENTIFIER_HEADERS = frozenset(
    ("namn", "name", "fulltnamn", "fullname", "tilltalsnamn", "mellannamn", "firstname", "lastname")
    + ("street", "co", "careof")
)
IDENTIFIER_SUFFIXES = ("fornamn", "efternamn", "adress", "address")
_WORD = r"[A-ZÅÄÖÉÜ][a-zåäöéüæøß]+"
NAME_SHAPED = re.compile(rf"{_WORD}(?:-{_WORD})?(?:,? {_WORD}(?:-{_WORD})?)+")
ADDRESS_SHAPED = re.compile(
    r"(?:\S.*(?:gatan|vägen|väg|gränd|stigen|torget|torg|allén|backen|plan|gata)\s+\d+\w?.*"
    r"|.*\b\d{3} ?\d{2} [A-ZÅÄÖ][a-zåäö]+.*)"
)
OTHER_DATES = {
    "DD.MM.YYYY": re.compile(r"\d{1,2}\.\d{1,2}\.\d{4}"),
    "DD/MM/YYYY": re.compile(r"\d{1,2}/\d{1,2}/\d{4}"),
    "YYYYMMDD": re.compile(r"(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])"),
}
# Thousands grouped by points in threes (1.234.567,50), which the border reads where the decimal mark
# is a comma (``values.amount_sql``).
POINT_GROUPED = r"[+-]?[0-9]{1,3}(\.[0-9]{3})+(,[0-9]*)?"
EXCEL_SERIALS = (20_000, 80_000)  # 1954 to 2119 as Excel's day numbers
DATE_HEADERS = ("datum", "date", "dag", "tidpunkt", "time")


@dataclass(frozen=True)
class Proposal:
    """The proposed unit (one dataset) and why: one line per decision, in the order they were made."""

    unit: Unit
    reasons: tuple[str, ...]
    sample_rows: int

    @property
    def dataset(self) -> Dataset:
        return self.unit.datasets[0]


class Judged(NamedTuple):
    """A column's proposed kind, its allowed codes, how its dates are written, and why."""

    kind: ColumnKind
    allowed: tuple[str, ...] | None
    why: str
    format: DateFormat = "iso"


@dataclass(frozen=True)
class Profile:
    """What the border's parsers make of one column's non-empty values (counts, from one query)."""

    values: int
    empty: int
    distinct: int
    pnr_valid: int
    integers: int
    leading_zero: int
    booleans: int
    decimals: int
    space_grouped: int
    nbsp_grouped: int
    dot_grouped: int
    dates: int
    months: int
    timestamps: int
    offsets: int
    serial_dates: int
    serial_timestamps: int
    minimum: float | None
    maximum: float | None


def propose(path: Path, unit: str, dataset: str, ref_year: int | None = None) -> Proposal:
    """The contract a load of ``path`` needs, with the reasons; raises DeliveryError if unreadable."""
    fmt, reasons = detect_format(path)
    sources = file_columns(path, fmt)
    text = Dataset(dataset, tuple(Column(s, f"c{i}", "text") for i, s in enumerate(sources)))
    frame = read_delivery_file(path, fmt, text)
    text_file = isinstance(fmt, Csv)
    columns, column_reasons = infer_columns(frame, sources, ref_year or date.today().year, text_file)
    if isinstance(fmt, Csv):
        fmt, comma_reason = _with_decimal_mark(fmt, frame, columns)
        column_reasons += comma_reason
    data = Dataset(dataset, tuple(columns), natural_key=())
    key, key_reason = natural_key(frame, data)
    data = Dataset(dataset, tuple(columns), DESCRIPTION, natural_key=key)
    style, style_reasons = personnummer_style(frame, data)
    proposed = Unit(unit, TODO, TODO, fmt, style, (data,))
    return Proposal(proposed, (*reasons, *column_reasons, key_reason, *style_reasons), frame.height)


# --- the file format ----------------------------------------------------------------------------


def detect_format(path: Path) -> tuple[FileFormat, list[str]]:
    """Parquet, JSON lines and Excel by their extension (their own headers say the rest); anything
    else is delimited text, whose encoding, separator and quoting are read from the bytes."""
    extension = path.suffix.lower().lstrip(".")
    if extension == "ndjson":
        return JsonLines(extension="ndjson"), ["format jsonl — by the extension .ndjson"]
    if extension in BINARY_FORMATS:
        return BINARY_FORMATS[extension], [f"format {extension} — by the extension .{extension}"]
    data = path.read_bytes()
    encoding, encoding_reason = detect_encoding(data)
    text = data.decode(encoding)
    separator, separator_reason = detect_separator(text)
    fmt = Csv(encoding=encoding, separator=separator, extension=extension or "csv")
    return fmt, [
        f"format csv — extension .{extension}, not a binary format",
        encoding_reason,
        separator_reason,
        quoting(text, separator),
        line_endings(text),
    ]


def line_endings(text: str) -> str:
    """CRLF or LF (the border reads both); a last line without one is how a cut file looks, and the
    border rejects it whole (``truncated_file``), so the sample must end as the others do."""
    lines, crlf = text.count("\n"), text.count("\r\n")
    ending = "CRLF" if crlf == lines else "LF" if not crlf else "CRLF and LF"
    if not text.endswith("\n"):
        return f"line endings {ending} — the last line has none: the border rejects such a file as truncated_file"
    return f"line endings {ending} — {crlf} of {lines} lines end in CRLF"


def detect_encoding(data: bytes) -> tuple[Encoding, str]:
    """A byte-order mark says UTF-16 or UTF-8 with BOM outright; then UTF-8 if every byte sequence
    is valid UTF-8 (cp1252 text with å, ä or ö almost never is), else Windows-1252."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return (
            "utf-16",
            "encoding utf-16 — the file starts with a UTF-16 byte-order mark (Excel's Unicode text)",
        )
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "encoding utf-8-sig — the file starts with a UTF-8 byte-order mark"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        try:
            data.decode("cp1252")
        except UnicodeDecodeError:
            raise ValueError(f"not UTF-8 (line {line}) nor Windows-1252: encoding unknown") from None
        return (
            "cp1252",
            f"encoding cp1252 — not UTF-8 (byte 0x{data[e.start]:02X} on line {line}), reads as Windows-1252",
        )
    others = sum(1 for ch in text if ord(ch) > 127)
    if not others:
        return "utf-8", "encoding utf-8 — all ASCII, which cp1252 reads alike: check a file with å, ä or ö"
    return "utf-8", f"encoding utf-8 — {others} non-ASCII characters, all valid UTF-8"


def detect_separator(text: str) -> tuple[str, str]:
    """The separator under which the most records have the header's number of fields (more than
    one); a separator at the end of every line is padding the border drops, not a column."""
    best: tuple[int, int, str, int] | None = None
    for sep in SEPARATORS:
        records = [r for r in csv.reader(io.StringIO(text), delimiter=sep) if r]
        if not records:
            continue
        fields, width = _width(records[0]), len(records[0])
        agreeing = sum(1 for r in records[1:] if len(r) == width)
        if fields > 1 and (best is None or (agreeing, fields) > best[:2]):
            best = (agreeing, fields, sep, len(records) - 1)
    if best is None:
        return ",", "separator ',' — no separator splits the header: one column"
    agreeing, fields, sep, records = best
    return sep, f"separator {sep!r} — {agreeing} of {records} records have {fields} fields"


def _width(header: list[str]) -> int:
    """Fields of the header without the empty ones a trailing separator adds (padding)."""
    width = len(header)
    while width and not header[width - 1]:
        width -= 1
    return width


def quoting(text: str, sep: str) -> str:
    """How fields are quoted: the border reads double quotes (a quoted field may hold the separator
    and line breaks, and a record is numbered by the physical line it starts on)."""
    records = list(csv.reader(io.StringIO(text), delimiter=sep))
    physical = text.count("\n") + (not text.endswith("\n"))
    quoted = len(re.findall(rf'(?:^|{re.escape(sep)})"', text, flags=re.MULTILINE))
    if not quoted:
        return "quoting none — no field starts with '\"'"
    spanning = physical - len(records)
    return f"quoting '\"' — {quoted} quoted field(s), {spanning} line break(s) inside them"


def _with_decimal_mark(fmt: Csv, frame: pl.DataFrame, columns: list[Column]) -> tuple[Csv, list[str]]:
    """Decimal comma when a decimal column's values use one, or group thousands by points in threes
    (``1.234``, which only a decimal-comma contract reads as thousands: without one it is 1.234)."""
    decimals = [frame[c.source].str.strip_chars() for c in columns if c.kind == "decimal"]
    if not decimals:
        return fmt, []
    with_comma = sum(values.str.contains(",", literal=True).sum() for values in decimals)
    ungrouped = (v.str.replace_all(r"[ \u00a0\u202f]", "") for v in decimals)
    grouped = sum(v.str.contains(f"^{POINT_GROUPED}$").sum() for v in ungrouped)
    comma = bool(with_comma or grouped)
    reason = (
        f"decimal_comma {str(comma).lower()} — {with_comma} decimal values use a comma, "
        f"{grouped} group thousands by '.'"
    )
    return dataclasses.replace(fmt, decimal_comma=comma), [reason]


# --- the columns ---------------------------------------------------------------------------------


def infer_columns(
    frame: pl.DataFrame, sources: list[str], ref_year: int, text_file: bool
) -> tuple[list[Column], list[str]]:
    """Each column's kind and rules, judged by the border's parsers over the sample's values; only a
    text file (CSV) can have a decimal comma, a typed file's numbers are written with a point."""
    columns: list[Column] = []
    reasons: list[str] = []
    names: set[str] = set()
    with duckdb.connect() as con:
        install_macros(con)
        con.register("raw", frame)
        for source in sources:
            profile = _profile(con, source, ref_year, text_file)
            has_person = any(c.kind == "personnummer" for c in columns)
            kind, allowed, why, fmt = column_kind(source, frame[source], profile, has_person)
            name = "person" if kind == "personnummer" else warehouse_name(source, names)
            names.add(name)
            mandatory = profile.empty == 0 and profile.values > 0
            columns.append(Column(source, name, kind, mandatory=mandatory, allowed=allowed, format=fmt))
            shown = f"{kind}, format {fmt}" if fmt != "iso" else kind
            reasons.append(
                f"{source} → {shown}{' (dropped at the border)' if kind == 'identifier' else ''} — {why}"
            )
            if not mandatory:
                reasons.append(f"{source} mandatory false — {profile.empty} of {frame.height} values empty")
            if kind in ("integer", "decimal") and profile.minimum is not None:
                reasons.append(
                    f"{source} min/max left for the steward — the sample ranges {_number(profile.minimum)} to {_number(profile.maximum)}"
                )
    return columns, reasons


def _profile(con: duckdb.DuckDBPyConnection, source: str, ref_year: int, text_file: bool) -> Profile:
    """One query over the column: how many values each of the border's parsers accepts."""
    amount = values.amount_sql("v", decimal_comma=text_file)
    point_grouped = f"'{POINT_GROUPED}'" if text_file else "'$^'"  # a typed file's 1.500 is 1.5
    sql = f"""
        WITH col AS (SELECT nullif(trim({sql_name(source)}), '') AS v FROM raw)
        SELECT count(v), count(*) - count(v), count(DISTINCT v),
            count(*) FILTER (coalesce(pnr_valid(pnr_parts(v), $year), false)),
            count(*) FILTER (regexp_full_match(v, '[+-]?[0-9]+')),
            count(*) FILTER (regexp_full_match(v, '[+-]?0[0-9]+')),
            count(*) FILTER (TRY_CAST(v AS BOOLEAN) IS NOT NULL AND NOT regexp_full_match(v, '[0-9]+')),
            count({amount}),
            count(*) FILTER (regexp_matches(v, '[0-9] [0-9]')),
            count(*) FILTER (regexp_matches(v, '[0-9][\\x{{00A0}}\\x{{202F}}][0-9]')),
            count(*) FILTER (regexp_full_match(regexp_replace(v, '[ \\x{{00A0}}\\x{{202F}}]', '', 'g'), {point_grouped})),
            count({values.date_sql("v")}), count({values.month_sql("v")}), count({values.timestamp_sql("v")}),
            count(*) FILTER (regexp_matches(v, '[0-9]{{2}}:[0-9]{{2}}(:[0-9]{{2}}(\\.[0-9]+)?)?([+-][0-9]{{2}}:?[0-9]{{2}}|Z)$')),
            count({values.date_sql("v", "excel_serial")}), count({values.timestamp_sql("v", "excel_serial")}),
            min({amount}), max({amount})
        FROM col
    """
    return Profile(*con.execute(sql, {"year": ref_year}).fetchone())


def column_kind(source: str, series: pl.Series, p: Profile, has_person: bool) -> Judged:
    """Identifiers first (a name loaded by mistake is the costly error), then Excel serial dates
    (whose fractions would otherwise look like digits of a personnummer), then the narrowest kind
    every value parses as, then one most values parse as, then text."""
    header = _plain(source)
    if header in IDENTIFIER_HEADERS or header.endswith(IDENTIFIER_SUFFIXES):
        return Judged("identifier", None, f"the header {source!r} names a person's name or address")
    if p.values == 0:
        return Judged("text", None, "every value is empty in the sample: the steward decides")
    if p.pnr_valid >= PERSONNUMMER_SHARE * p.values:
        share = f"{p.pnr_valid} of {p.values} values validate as personnummer ({p.pnr_valid / p.values:.0%}: Luhn, plausible date)"
        if has_person:
            return Judged(
                "identifier", None, f"{share}; the border pseudonymises one personnummer per dataset"
            )
        invalid = p.values - p.pnr_valid
        return Judged("personnummer", None, share + (f"; {invalid} would be quarantined" if invalid else ""))
    if serials := excel_serials(source, p):
        return serials
    texts = [t for t in series.drop_nulls().str.strip_chars().to_list() if t]
    if shaped := _personnummer_shaped(texts):
        return shaped
    if why := _person_shaped(texts, p):
        return Judged("identifier", None, why)
    exact = _exact_kind(p) or _near_kind(p)
    if exact:
        return Judged(exact[0], None, exact[1])
    return _text(source, texts, p)


def _personnummer_shaped(texts: list[str]) -> Judged | None:
    """Values shaped like a personnummer that did not validate (typos, test numbers, another id):
    never a code with an allowed set or a number, which would copy them into the contract or load
    them unscanned. Mostly such values: dropped; a few among other text: free text, masked at the border."""
    shaped = sum(1 for t in texts if PERSONNUMMER_LIKE.search(t))
    if not shaped:
        return None
    if shaped >= MOSTLY * len(texts):
        return Judged(
            "identifier",
            None,
            (
                f"{shaped} of {len(texts)} values are shaped like a personnummer but do not validate: dropped at "
                "the border (ask the unit what they are)"
            ),
        )
    return Judged(
        "text",
        None,
        (
            f"{shaped} of {len(texts)} values hold digits shaped like a personnummer: free text, masked at the "
            "border, never an allowed set or a number"
        ),
    )


def _exact_kind(p: Profile) -> tuple[str, str] | None:
    """The narrowest kind every non-empty value parses as at the border."""
    n = p.values
    if p.booleans == n:
        return "boolean", f"{n} of {n} values are true/false"
    if p.integers == n and not p.leading_zero:
        return "integer", f"{n} of {n} values are whole numbers"
    if p.dates == n:
        return "date", f"{n} of {n} values are ISO dates (or midnight timestamps, as Excel writes dates)"
    if p.months == n:
        return "month", f"{n} of {n} values are YYYY-MM"
    if p.timestamps == n:
        return "timestamp", f"{n} of {n} values are ISO timestamps, {p.offsets} with a UTC offset"
    if p.decimals == n and not p.leading_zero:
        return "decimal", f"{n} of {n} values are amounts{_grouping(p)}"
    return None


def _near_kind(p: Profile) -> tuple[str, str] | None:
    """A kind most values parse as: the rest would be quarantined, which the reason says."""
    n = p.values
    for kind, parsed in (("date", p.dates), ("month", p.months), ("timestamp", p.timestamps)):
        if parsed >= MOSTLY * n:
            return kind, f"{parsed} of {n} values parse; {n - parsed} would be quarantined as not_a_{kind}"
    if p.decimals >= MOSTLY * n and not p.leading_zero:
        return "decimal", (
            f"{p.decimals} of {n} values are amounts{_grouping(p)}; {n - p.decimals} would be quarantined "
            "as not_a_decimal"
        )
    return None


def _grouping(p: Profile) -> str:
    """How thousands are grouped, for the reason line."""
    kinds = [
        f"{count} grouped by {what}"
        for count, what in (
            (p.space_grouped, "space"),
            (p.nbsp_grouped, "no-break space"),
            (p.dot_grouped, "'.' in threes"),
        )
        if count
    ]
    return f" ({', '.join(kinds)})" if kinds else ""


def _text(source: str, texts: list[str], p: Profile) -> Judged:
    """A code with an allowed set, or free text; says so where the values are dates in a spelling
    the border cannot read (31.12.2024), so the steward asks the unit for ISO dates."""
    for spelling, pattern in OTHER_DATES.items():
        if sum(1 for t in texts if pattern.fullmatch(t)) >= MOSTLY * len(texts):
            return Judged(
                "text",
                None,
                f"dates written {spelling}: the border reads ISO dates and Excel serials only (ask for ISO)",
            )
    if p.leading_zero and p.integers == p.values:
        why = f"{p.leading_zero} values have leading zeros: a code, not a number"
    else:
        why = "neither numbers nor dates"
    if p.distinct <= MAX_CODES and p.values >= 2 * p.distinct:
        allowed = tuple(sorted(set(texts)))
        return Judged(
            "text",
            allowed,
            f"{why}; {p.distinct} distinct values in {p.values}: a code with an allowed set (the sample's; the steward adds codes it lacks)",
        )
    return Judged(
        "text",
        None,
        f"{why}; {p.distinct} distinct values in {p.values}: free text (scanned for personnummer)",
    )


def _person_shaped(texts: list[str], p: Profile) -> str | None:
    """Values shaped like names (two capitalised words) or addresses (a street and number, or a
    postcode and town), mostly distinct: a person's identity, dropped however the header reads."""
    if p.distinct < 0.5 * p.values:
        return None
    for what, pattern in (("names", NAME_SHAPED), ("addresses", ADDRESS_SHAPED)):
        shaped = sum(1 for t in texts if pattern.fullmatch(t))
        if shaped >= 0.8 * len(texts):
            return f"{shaped} of {len(texts)} values are shaped like {what}"
    return None


def excel_serials(source: str, p: Profile) -> Judged | None:
    """Numbers in Excel's day-number range (1954 to 2119) under a date-like header, most of which the
    border reads as Excel serials: dates when none has a time of day, else timestamps. (A sheet's
    date cell is read as an ISO date; a number cell, or a CSV Excel exported, holds the serial.)
    The header and the range are what tell a serial from an amount: 45292 kronor is no date."""
    if not any(h in _plain(source) for h in DATE_HEADERS) or p.minimum is None:
        return None
    low, high = EXCEL_SERIALS
    if not (low <= p.minimum and p.maximum <= high) or p.serial_timestamps < MOSTLY * p.values:
        return None
    kind, parsed = (
        ("date", p.serial_dates)
        if p.serial_dates == p.serial_timestamps
        else ("timestamp", p.serial_timestamps)
    )
    first, last = (values.EXCEL_EPOCH + timedelta(days=int(d)) for d in (p.minimum, p.maximum))
    why = (
        f"{parsed} of {p.values} values are Excel serial {kind}s (day numbers{', with the time of day as a fraction' if kind == 'timestamp' else ''}) "
        f"under a date-like header, {first} to {last}"
    )
    if parsed < p.values:
        why += f"; {p.values - parsed} would be quarantined as not_a_{kind}"
    return Judged(kind, None, why, "excel_serial")


def warehouse_name(source: str, taken: set[str]) -> str:
    """The unit zone column for a source column: lower case ASCII, ``_`` between words, unique."""
    base = re.sub(r"[^a-z0-9]+", "_", _ascii(source).lower()).strip("_") or "column"
    if not NAME.fullmatch(base):
        base = f"c_{base}"
    name, n = base, 2
    while name in taken or name == "person":
        name, n = f"{base}_{n}", n + 1
    return name


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _plain(header: str) -> str:
    """A header without case, diacritics or separators: ``Förnamn`` and ``fornamn`` alike."""
    return re.sub(r"[^a-z]", "", _ascii(header).lower())


# --- keys and persons ---------------------------------------------------------------------------


def natural_key(frame: pl.DataFrame, dataset: Dataset) -> tuple[tuple[str, ...], str]:
    """The fewest loaded columns (one, then the person with one more) unique over the sample; else
    every loaded column. A proposal from one sample, which the steward confirms."""
    loaded = {loaded_name(c): c.source for c in dataset.columns if c.kind != "identifier"}
    person = [n for n in loaded if n == "person_pseudonym"]
    candidates = [(n,) for n in loaded] + [(*person, n) for n in loaded if person and n not in person]
    for key in candidates:
        if frame.select([loaded[n] for n in key]).is_unique().all():
            return (
                key,
                f"natural_key {list(key)} — unique in {frame.height} of {frame.height} rows (steward to confirm)",
            )
    every = tuple(loaded)
    return every, f"natural_key {list(every)} — no smaller set is unique in the sample (steward to confirm)"


def loaded_name(column: Column) -> str:
    """The name the border loads a column under (personnummer become pseudonyms, keys ``_key``)."""
    return {"personnummer": "person_pseudonym", "key": f"{column.name}_key"}.get(column.kind, column.name)


def personnummer_style(frame: pl.DataFrame, dataset: Dataset) -> tuple[PersonnummerStyle | None, list[str]]:
    """How the unit writes personnummer, from the shapes of the sample's values."""
    column = dataset.person_column
    if column is None:
        return None, []
    shapes = Counter(_shape(v) for v in frame[column.source].drop_nulls().str.strip_chars() if v)
    style: PersonnummerStyle = next(iter(shapes)) if len(shapes) == 1 and None not in shapes else "mixed"
    counts = ", ".join(f"{n} {s or 'other'}" for s, n in shapes.most_common())
    return style, [f"personnummer_style {style} — {counts}"]


def _shape(value: str) -> PersonnummerStyle | None:
    if re.fullmatch(r"\d{12}", value):
        return "twelve"
    if re.fullmatch(r"\d{8}-\d{4}", value):
        return "twelve_hyphen"
    if re.fullmatch(r"\d{6}[-+]\d{4}", value):
        return "ten_separator"
    return None


__all__ = ["TODO", "Proposal", "detect_format", "propose"]


def _number(value: float) -> str:
    """A sample's extreme as written, without exponent or rounding (100000.75, not 1e+05)."""
    return f"{value:f}".rstrip("0").rstrip(".")
