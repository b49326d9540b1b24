"""Amounts, dates and timestamps as Swedish systems write them: the one place they are parsed.

Each function returns a DuckDB SQL expression over a text expression, so the border
query parses every value in its one vectorised pass; a value that does not parse is
NULL, which the border turns into a ``not_a_<kind>`` quarantine rule. The GX suite
(``pipelines/quality/``) parses no text of its own: it judges the typed values these
expressions produced, read back from the unit zone, so the border and the suite cannot
read one value two ways.

- **Amounts.** Thousands are grouped by a space, a no-break space (U+00A0, what Swedish
  Windows and Excel write) or a narrow no-break space (U+202F), and, where the decimal mark
  is a comma, by a point in groups of three; the decimal mark is the contract's (a comma
  where ``Csv.decimal_comma``, else a point).
- **Dates** are ISO (``YYYY-MM-DD``), or a timestamp at exactly midnight, which is how Excel
  (whose dates are timestamps) and a native Parquet timestamp write a date; months ``YYYY-MM``.
- **Timestamps** are ISO, with a space or ``T``, optional fractional seconds, and an
  optional UTC offset (``+01:00``, ``+0100``, ``+01`` or ``Z``). The zone column is a naive
  ``TIMESTAMP`` holding Swedish wall-clock time, which is what the systems that write no
  offset mean; a value with an offset is converted to Europe/Stockholm local time, so
  both spellings of one instant load as the same value. (In the autumn hour that occurs
  twice the offset is what told the two apart; local time does not keep it.)
- **Excel serial numbers**, where the contract's column says ``format: excel_serial``: the day
  number of Excel's 1900 date system (45292 is 2024-01-01), as a CSV exported from Excel or a sheet
  cell without a date format holds a date; a fraction is the time of day (45292.5 is noon), rounded
  to the millisecond as Excel and openpyxl do. Excel counts a 1900-02-29 that never was (serial 60),
  so only from serial 61 (1900-03-01) is a serial the days since 1899-12-30; serials below 61 (the
  first two months of 1900, and Excel's 0 and fictitious leap day) are rejected as out of range,
  since no municipal record is dated then and reading them right would need Excel's bug copied;
  so are serials past 2958465 (9999-12-31, Excel's last day). A serial is digits with an optional
  fraction after a point or a comma (Swedish Excel's decimal mark; a serial is never grouped in
  thousands, so a comma can mean nothing else); a sign, an exponent or text is no serial. A date
  column takes whole serials only (a time of day is no date, as for ISO). The value is naive
  Swedish wall-clock time, like an ISO timestamp without an offset: Excel keeps no time zone.
"""

from __future__ import annotations

from datetime import date

from pipelines.units.spec import DateFormat

LOCAL_ZONE = "Europe/Stockholm"
_SPACES = r"[ \x{00A0}\x{202F}]"  # RE2: space, no-break space, narrow no-break space
_POINT_GROUPED = r"-?\d{1,3}(\.\d{3})+(,\d*)?"  # 1.234.567,50: points grouping thousands
_CLOCK = ("%H:%M:%S", "%H:%M:%S.%f")
_DATES = ["%Y-%m-%d", "%Y-%m-%d 00:00:00", "%Y-%m-%dT00:00:00"]
_NAIVE = [f"%Y-%m-%d{sep}{clock}" for sep in (" ", "T") for clock in _CLOCK]
EXCEL_EPOCH = date(1899, 12, 30)  # day 0 of Excel's 1900 date system, for serials from EXCEL_FIRST on
EXCEL_FIRST = 61  # 1900-03-01: serial 60 is Excel's 1900-02-29, which never was
EXCEL_LAST = 2_958_465  # 9999-12-31, the last day Excel has
_SERIAL = r"[0-9]{1,7}([.,][0-9]+)?"  # digits and an optional fraction: no sign, exponent or grouping
_UNIX_DAY = (date(1970, 1, 1) - EXCEL_EPOCH).days  # 25569: the serial of 1970-01-01
_MS_A_DAY = 86_400_000


def amount_sql(text: str, decimal_comma: bool) -> str:
    """A DOUBLE from an amount with optional thousands spaces and the contract's decimal mark.

    Where the decimal mark is a comma, a point may group thousands too (``1.234.567,50``), but only in
    groups of three: ``1.23,4`` is no amount.
    """
    digits = f"regexp_replace({text}, '{_SPACES}', '', 'g')"
    if not decimal_comma:
        return f"TRY_CAST({digits} AS DOUBLE)"
    ungrouped = f"CASE WHEN regexp_full_match({digits}, '{_POINT_GROUPED}') THEN replace({digits}, '.', '') ELSE {digits} END"
    return f"TRY_CAST(replace({ungrouped}, ',', '.') AS DOUBLE)"


def date_sql(text: str, fmt: DateFormat = "iso") -> str:
    """A DATE from ``YYYY-MM-DD``, or that date at midnight (a time other than 00:00:00 is no date);
    or, where the column's format is ``excel_serial``, from a whole Excel serial number."""
    if fmt == "excel_serial":
        serial = _excel_serial(text)
        return (
            f"CASE WHEN {serial} = floor({serial}) THEN DATE '{EXCEL_EPOCH}' + CAST({serial} AS INTEGER) END"
        )
    return f"TRY_CAST(try_strptime({text}, {_DATES}) AS DATE)"


def month_sql(text: str) -> str:
    """The first day of the month (DATE) from ``YYYY-MM``."""
    return f"TRY_CAST(try_strptime({text}, '%Y-%m') AS DATE)"


def timestamp_sql(text: str, fmt: DateFormat = "iso") -> str:
    """A naive TIMESTAMP in Swedish local time from an ISO timestamp, with or without an offset, or
    from an Excel serial number with the time of day as its fraction (``fmt="excel_serial"``).

    The naive spellings are tried first and the offset ones only where they fail (COALESCE
    evaluates its second argument for those rows alone), so files without offsets pay nothing.
    """
    if fmt == "excel_serial":
        milliseconds = f"CAST(round(({_excel_serial(text)} - {_UNIX_DAY}) * {_MS_A_DAY}) AS BIGINT)"
        # a fraction that rounds up to the millisecond after Excel's last day is past it too
        return f"CASE WHEN {milliseconds} < {(EXCEL_LAST + 1 - _UNIX_DAY) * _MS_A_DAY} THEN epoch_ms({milliseconds}) END"
    with_offset = [f"{f}%z" for f in _NAIVE]
    utc = f"regexp_replace({text}, 'Z$', '+00:00')"
    return (
        f"coalesce(try_strptime({text}, {_NAIVE}), "
        f"timezone('{LOCAL_ZONE}', try_strptime({utc}, {with_offset})))"
    )


def _excel_serial(text: str) -> str:
    """The Excel serial number as a DOUBLE, or NULL where the text is none or outside 61..2958465."""
    number = f"TRY_CAST(replace({text}, ',', '.') AS DOUBLE)"
    in_range = f"{number} >= {EXCEL_FIRST} AND {number} < {EXCEL_LAST + 1}"
    return f"(CASE WHEN regexp_full_match({text}, '{_SERIAL}') AND {in_range} THEN {number} END)"
