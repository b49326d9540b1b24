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
"""

from __future__ import annotations

LOCAL_ZONE = "Europe/Stockholm"
_SPACES = r"[ \x{00A0}\x{202F}]"  # RE2: space, no-break space, narrow no-break space
_POINT_GROUPED = r"-?\d{1,3}(\.\d{3})+(,\d*)?"  # 1.234.567,50: points grouping thousands
_CLOCK = ("%H:%M:%S", "%H:%M:%S.%f")
_DATES = ["%Y-%m-%d", "%Y-%m-%d 00:00:00", "%Y-%m-%dT00:00:00"]
_NAIVE = [f"%Y-%m-%d{sep}{clock}" for sep in (" ", "T") for clock in _CLOCK]


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


def date_sql(text: str) -> str:
    """A DATE from ``YYYY-MM-DD``, or that date at midnight (a time other than 00:00:00 is no date)."""
    return f"TRY_CAST(try_strptime({text}, {_DATES}) AS DATE)"


def month_sql(text: str) -> str:
    """The first day of the month (DATE) from ``YYYY-MM``."""
    return f"TRY_CAST(try_strptime({text}, '%Y-%m') AS DATE)"


def timestamp_sql(text: str) -> str:
    """A naive TIMESTAMP in Swedish local time from an ISO timestamp, with or without an offset.

    The naive spellings are tried first and the offset ones only where they fail (COALESCE
    evaluates its second argument for those rows alone), so files without offsets pay nothing.
    """
    with_offset = [f"{f}%z" for f in _NAIVE]
    utc = f"regexp_replace({text}, 'Z$', '+00:00')"
    return (
        f"coalesce(try_strptime({text}, {_NAIVE}), "
        f"timezone('{LOCAL_ZONE}', try_strptime({utc}, {with_offset})))"
    )
