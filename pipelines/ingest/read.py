"""Read one delivery file, in its unit's format, into a frame of strings with line numbers.

Everything is read as text: types are parsed at the border (``values.py``), where a
value that does not parse becomes a quarantined row with a rule rather than a lost row
or a silently coerced one; a natively typed value (Parquet, JSON, an Excel cell) becomes
the text the border parses. A file that cannot be read at all raises
:class:`DeliveryError` naming the file, the line where there is one, and the rule.

Formats: CSV (UTF-8, UTF-8 with BOM, Windows-1252, UTF-16 with BOM; quoted fields may
hold newlines, a trailing separator on every line is padding), Parquet, JSON lines
(nested objects by their path), Excel sheets. A line is the file's physical line (for
Excel the sheet's row) where the record starts.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import polars as pl

from pipelines.units.spec import Csv, Dataset, FileFormat, JsonLines, Parquet, Xlsx

LINE = "_source_line"
PERSONNUMMER_LIKE = re.compile(r"[0-9]{6,8}[-+]?[0-9]{4}")
MAX_LINE_BYTES = 64 * 1024  # no field of any contract comes near this; a longer line is a broken file
SEPARATORS = (",", ";", "\t", "|")
# Every rule a DeliveryError can carry: the whole file is quarantined under it.
FILE_RULES = (
    "empty_file",
    "binary_content",
    "wrong_encoding",
    "wrong_delimiter",
    "line_too_long",
    "duplicated_header",
    "truncated_file",
    "missing_fields",
    "extra_fields",
    "malformed_csv",
    "unreadable_parquet",
    "unreadable_json_lines",
    "unreadable_xlsx",
    "columns_differ_from_contract",
)


class DeliveryError(Exception):
    """A delivery-level failure: the whole file is quarantined with this reason.

    The detail is stored (reconciliation) and shown (Dagster), so anything that
    looks like a personnummer in it (a header that is really a data row, a
    parser quoting a field) is masked.
    """

    def __init__(self, path: Path, rule: str, detail: str, line: int | None = None, rows: int | None = None):
        detail = PERSONNUMMER_LIKE.sub("<masked>", detail)
        self.path, self.rule, self.detail, self.line, self.rows = path, rule, detail, line, rows
        where = f"{path}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {rule}: {detail}")


def read_delivery_file(path: Path, fmt: FileFormat, dataset: Dataset) -> pl.DataFrame:
    """Return the file's rows as strings plus ``_source_line`` (1-based, header is line 1)."""
    if path.stat().st_size == 0:
        raise DeliveryError(path, "empty_file", "the file has no bytes", rows=0)
    match fmt:
        case Csv():
            frame = _read_csv(path, fmt, dataset)
        case Parquet():
            frame = _numbered(_read_binary(path, pl.read_parquet, "unreadable_parquet"), first_line=1)
        case JsonLines():
            frame = _numbered(_read_json_lines(path), first_line=1)
        case Xlsx(sheet=sheet):
            frame = _read_binary(path, partial(_read_sheet, sheet=sheet), "unreadable_xlsx")
    _check_columns(path, frame, dataset)
    schema = frame.schema
    return frame.select(LINE, *(_as_text(c.source, schema[c.source]) for c in dataset.columns))


def file_columns(path: Path, fmt: FileFormat) -> list[str]:
    """The columns the border would find in the file, read as :func:`read_delivery_file` reads them
    (a CSV's header without its padding, a JSON object's nested fields by path), so that onboarding
    proposes a contract from exactly what a load will see."""
    match fmt:
        case Csv():
            text = _decode(path, path.read_bytes(), fmt.encoding)
            header = next(csv.reader(io.StringIO(text), delimiter=fmt.separator), [])
            while header and not header[-1]:
                header.pop()  # a separator at the end of every line is padding (``_without_padding``)
            return header
        case Parquet():
            return list(_read_binary(path, pl.read_parquet_schema, "unreadable_parquet"))
        case JsonLines():
            return _read_json_lines(path).columns
        case Xlsx(sheet=sheet):
            sheet_frame = _read_binary(path, partial(_read_sheet, sheet=sheet), "unreadable_xlsx")
            return [c for c in sheet_frame.columns if c != LINE]


def _numbered(frame: pl.DataFrame, first_line: int) -> pl.DataFrame:
    """Each record's line, for files with one record per line."""
    return frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


def _read_csv(path: Path, fmt: Csv, dataset: Dataset) -> pl.DataFrame:
    """The records with the physical line each starts on, so a steward finds a row by its line
    also after a quoted field that holds newlines (the slow count runs only for such files)."""
    data = path.read_bytes()
    text = _decode(path, data, fmt.encoding)
    lines = pl.Series(text.removesuffix("\n").split("\n")).str.strip_suffix("\r")
    rows = len(lines) - 1
    _check_structure(path, lines, fmt.separator, dataset, ends_with_newline=text.endswith("\n"))
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode()),
            separator=fmt.separator,
            infer_schema=False,
            truncate_ragged_lines=False,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as e:
        raise DeliveryError(path, "malformed_csv", str(e).splitlines()[0], rows=rows) from None
    if frame.height == rows:
        return _without_padding(path, _numbered(frame, first_line=2), lines[0], fmt.separator)
    starts = [line for line, _ in _records(lines, fmt.separator)][1:]
    if len(starts) != frame.height:
        detail = f"{frame.height} records read, {len(starts)} counted by line"
        raise DeliveryError(path, "malformed_csv", detail, rows=rows)
    numbered = frame.with_columns(pl.Series(LINE, starts, dtype=pl.Int64)).select(LINE, *frame.columns)
    return _without_padding(path, numbered, lines[0], fmt.separator)


def _without_padding(path: Path, frame: pl.DataFrame, header: str, sep: str) -> pl.DataFrame:
    """The frame without the empty columns a separator at the end of every line makes (Excel and
    some case systems write one); a value in such a column has no header and rejects the file."""
    padding = len(header) - len(header.rstrip(sep))  # each trailing separator adds an empty column
    if not padding:
        return frame
    columns = frame.columns[-padding:]
    filled = frame.filter(pl.any_horizontal(pl.col(columns).str.len_bytes() > 0))
    if filled.height:
        line = filled[LINE][0]
        raise DeliveryError(
            path, "extra_fields", "a value after the last header field", line=line, rows=frame.height
        )
    return frame.drop(columns)


def _records(lines: pl.Series, sep: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-empty record with the physical line it starts on (a quoted field may hold newlines)."""
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)
    start = 1
    for record in reader:
        if record:
            yield start, record
        start = reader.line_num + 1


def _decode(path: Path, data: bytes, encoding: str) -> str:
    """Bytes to text in the contract's encoding, naming the line where it goes wrong and why.

    UTF-16 (Excel's "Unicode text") is read only with its byte-order mark, which says the
    byte order; without one, or where the contract names another encoding, the file is
    rejected, with its row count where the mark let us read it.
    """
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if encoding == "utf-16" and not utf16:
        raise DeliveryError(
            path, "wrong_encoding", "no UTF-16 byte-order mark: the byte order is unknown", line=1
        )
    if utf16 and encoding != "utf-16":
        rows = _decoded(path, data, "utf-16").removesuffix("\n").count("\n")
        detail = f"the file is UTF-16 (byte-order mark); the contract says {encoding}"
        raise DeliveryError(path, "wrong_encoding", detail, line=1, rows=rows)
    if not utf16 and (nul := data.find(b"\x00")) >= 0:
        line = data[:nul].count(b"\n") + 1
        raise DeliveryError(path, "binary_content", "NUL byte: this is not a text file", line=line)
    text = _decoded(path, data, encoding)
    if encoding == "cp1252" and not data.isascii() and _decodes(data, "utf-8"):
        first = next(i for i, b in enumerate(data) if b > 127)
        line = data[:first].count(b"\n") + 1
        raise DeliveryError(path, "wrong_encoding", "the file is UTF-8; the contract says cp1252", line=line)
    return text


def _decoded(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].decode(encoding, errors="replace").count("\n") + 1
        hint = " (the bytes look like Windows-1252/Latin-1)" if _decodes(data, "cp1252") else ""
        raise DeliveryError(
            path, "wrong_encoding", f"not {encoding}: {e.reason} at byte {e.start}{hint}", line=line
        ) from None


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _check_structure(
    path: Path, lines: pl.Series, sep: str, dataset: Dataset, ends_with_newline: bool
) -> None:
    """Vectorised checks on the lines; the precise (slow) csv parse runs only when they disagree."""
    rows = len(lines) - 1
    if rows and not ends_with_newline:
        _cut(path, lines)
    header = lines[0]
    too_long = (lines.str.len_bytes() > MAX_LINE_BYTES).arg_true()
    if len(too_long):
        line = int(too_long[0]) + 1
        detail = f"{len(lines[int(too_long[0])].encode()):,} bytes (limit {MAX_LINE_BYTES:,})"
        raise DeliveryError(path, "line_too_long", detail, line=line, rows=rows)
    expected = [c.source for c in dataset.columns]
    if sep not in header:
        for other in SEPARATORS:
            if other != sep and header.split(other) == expected:
                detail = f"separated by {other!r}, the contract says {sep!r}"
                raise DeliveryError(path, "wrong_delimiter", detail, line=1, rows=rows)
    repeated = (lines.slice(1) == header).arg_true()
    if len(repeated):
        line = int(repeated[0]) + 2
        raise DeliveryError(path, "duplicated_header", "the header row appears again", line=line, rows=rows)
    fields = header.count(sep) + 1
    counts = lines.str.count_matches(sep, literal=True) + 1
    if (counts == fields).all():
        return
    # Separators inside quoted values (a comment with a comma): count without the quoted spans, on
    # lines whose quotes pair up; a record over several lines leaves the decision to the csv parse.
    if (lines.str.count_matches('"', literal=True) % 2 == 0).all():
        unquoted = lines.str.replace_all('"[^"]*"', "")
        if (unquoted.str.count_matches(sep, literal=True) + 1 == fields).all():
            return
    for number, record in _records(lines, sep):
        if len(record) != fields:
            rule = "missing_fields" if len(record) < fields else "extra_fields"
            detail = f"{len(record)} fields, the header has {fields}"
            raise DeliveryError(path, rule, detail, line=number, rows=rows)


def _cut(path: Path, lines: pl.Series) -> None:
    """A last line without the line ending every other line has: the file may have been cut there.

    A cut inside the last field still parses (``28515.00`` cut to ``285`` is a valid amount), and
    the records after the cut are not in the file at all, so no row-level rule can account for
    them. The whole file is quarantined (every row it holds is counted under ``truncated_file``,
    at the last line) and the delivery is held until the unit sends the file again: nothing
    loads a partial month as if it were whole, and nothing in the file goes uncounted.
    """
    detail = "the last line has no line ending, as every other line has: the file may have been cut here"
    raise DeliveryError(path, "truncated_file", detail, line=len(lines), rows=len(lines) - 1)


def _read_json_lines(path: Path) -> pl.DataFrame:
    try:
        return _flattened(pl.read_ndjson(path))
    except Exception as e:  # find the line for the steward; only on the failure path
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    json.loads(raw)
                except ValueError as bad:
                    raise DeliveryError(path, "unreadable_json_lines", str(bad), line=number) from None
        raise DeliveryError(
            path, "unreadable_json_lines", str(e).splitlines()[0] or type(e).__name__
        ) from None


def _flattened(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested objects as columns named by their path (``sokande.personnummer``), which is how a
    contract names a nested field; the column check then judges them like any other column."""
    nested = {c: t for c, t in frame.schema.items() if isinstance(t, pl.Struct)}
    if not nested:
        return frame
    named = frame.with_columns(
        pl.col(c).struct.rename_fields([f"{c}.{f.name}" for f in t.fields]) for c, t in nested.items()
    )
    return _flattened(named.unnest(list(nested)))


def _read_sheet(path: Path, sheet: str | None) -> pl.DataFrame:
    """The sheet's records with ``_source_line`` the row number Excel shows for each (1-based).

    Every cell is the text calamine (through fastexcel) gives it: a number as written with a
    decimal point, a date cell as that date at midnight. The sheet is read without a header and
    without skipping rows (``header_row=None, skip_rows=0``), which makes calamine's grid start at
    the sheet's row 1 even when the first rows are blank, so a record's index in the grid is its
    row number. The header is the first row that holds a value, as calamine itself would pick it;
    a blank row (no cell with a value, formatted or not) is not a record: it is skipped, as the
    independent count (``pipelines/quality/records.py``) skips it, and the rows below it keep
    their own numbers. Columns are named as fastexcel names them (``name_1`` for a repeated
    header, ``__UNNAMED__<i>`` for a column without one, dropped when it holds no value).
    """
    grid = pl.read_excel(
        path,
        sheet_name=sheet,
        engine="calamine",
        infer_schema_length=0,
        read_options={"header_row": None, "skip_rows": 0},
        drop_empty_rows=False,
        drop_empty_cols=False,
    )
    cells = grid.columns
    rows = grid.with_row_index(LINE, offset=1).filter(pl.any_horizontal(pl.col(cells).is_not_null()))
    if rows.is_empty():
        raise pl.exceptions.NoDataError("empty Excel sheet")
    names = _header_names(rows.row(0)[1:])
    records = rows.slice(1).select(
        pl.col(LINE).cast(pl.Int64), *(pl.col(c).alias(n) for c, n in zip(cells, names, strict=True))
    )
    empty = [n for n in names if n.startswith("__UNNAMED__") and records[n].null_count() == records.height]
    return records.drop(empty)


def _header_names(header: tuple[str | None, ...]) -> list[str]:
    """Column names from the header row's cells, as fastexcel makes them."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = cell if cell else f"__UNNAMED__{index}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        names.append(name)
    return names


def _read_binary(path: Path, reader, rule: str) -> pl.DataFrame:
    try:
        return reader(path)
    except Exception as e:  # polars raises several error types for a corrupt file
        raise DeliveryError(path, rule, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """A typed column (Parquet, JSON lines) as the text the border parses.

    Dates, numbers and booleans cast to text the border reads; a timestamp is written as
    ISO 8601, with its offset when it has a time zone, so a native timestamp is judged
    by the same parser as a written one (``values.timestamp_sql``).
    """
    column = pl.col(name)
    if dtype == pl.String:
        return column
    if isinstance(dtype, pl.Datetime):
        offset = "%:z" if dtype.time_zone else ""
        return column.dt.cast_time_unit("us").dt.strftime(f"%Y-%m-%dT%H:%M:%S%.f{offset}")
    return column.cast(pl.String)


def _check_columns(path: Path, frame: pl.DataFrame, dataset: Dataset) -> None:
    expected = [c.source for c in dataset.columns]
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected and c != LINE]
    if missing or extra:
        detail = f"missing columns {missing}, unexpected columns {extra}; expected {expected}"
        raise DeliveryError(path, "columns_differ_from_contract", detail, line=1, rows=frame.height)
