"""Records in a delivery file, counted by a reader far simpler than the loader's.

Reconciliation compares rows in the file with rows loaded + quarantined. If "rows in the file" came
from the loader itself, a parser that dropped or merged lines would balance the books anyway; this
count is independent of it: plain lines when the file has no quotes, Python's csv module (quote-aware:
a quoted newline does not start a record) when it does, Parquet's own footer, non-blank JSON lines,
the rows of an Excel sheet's XML that hold a value.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pyarrow.parquet as pq

from pipelines.units.spec import Csv, FileFormat, JsonLines, Parquet, Xlsx


def count_records(path: Path, fmt: FileFormat) -> int:
    """Data records in the file (a CSV's header excluded); blank lines are not records."""
    match fmt:
        case Csv(encoding=encoding, separator=separator):
            return _csv_records(path.read_bytes().decode(encoding), separator)
        case Parquet():
            return pq.ParquetFile(path).metadata.num_rows
        case JsonLines():
            return sum(1 for line in path.read_bytes().splitlines() if line.strip())
        case Xlsx(sheet=sheet):
            return max(_sheet_rows(path, sheet) - 1, 0)


def _csv_records(text: str, separator: str) -> int:
    if '"' not in text:
        records = sum(1 for line in text.splitlines() if line.strip())
    else:
        records = sum(
            1 for record in csv.reader(io.StringIO(text, newline=""), delimiter=separator) if record
        )
    return max(records - 1, 0)


SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RELATION = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _sheet_rows(path: Path, sheet: str | None) -> int:
    """Rows of the sheet (the first unless named) with at least one value, straight from its XML."""
    with zipfile.ZipFile(path) as book:
        sheets = ElementTree.fromstring(book.read("xl/workbook.xml")).iter(f"{SHEET}sheet")
        wanted = next(s for s in sheets if sheet is None or s.get("name") == sheet).get(RELATION)
        relations = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target") for r in relations if r.get("Id") == wanted)
        xml = ElementTree.fromstring(book.read(f"xl/{target.removeprefix('/xl/')}"))
    return sum(1 for row in xml.iter(f"{SHEET}row") if any(map(_has_value, row)))


def _has_value(cell: ElementTree.Element) -> bool:
    return cell.find(f"{SHEET}v") is not None or cell.find(f"{SHEET}is") is not None
