"""A corpus of broken deliveries, and what the platform must say about each.

The files are in ``files/`` exactly as a unit's system could have sent them
(bytes matter: encodings, a file cut mid-row, a Parquet file cut in half);
only the 1 MB line is built here, to keep the repository small. Each case says
which unit and dataset the file poses as, and the verdict expected: a whole
file quarantined under a rule (and the line, where there is one), or rows
quarantined one by one, and the severity of the delivery's expectations check
(ERROR blocks the unit's downstream, WARN does not).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.ingest.months import Delivery
from pipelines.settings import Paths
from pipelines.units import UNITS
from pipelines.units.spec import Csv, JsonLines, Parquet

FILES = Path(__file__).parent / "files"
ALONE = "Ensamstående"


@dataclass(frozen=True)
class Case:
    name: str
    unit: str
    dataset: str
    severity: str  # of the expectations check: ERROR (blocks) or WARN
    rule: str | None = None  # the whole file is rejected under this rule ...
    line: int | None = None  # ... at this line, where there is one
    rows: tuple[tuple[int, str, str], ...] = ()  # ... or these rows: (line, rule, column)
    source: str | None = None  # file in files/, default <name>.<ext>

    def content(self) -> bytes:
        if self.name == "one_mb_line":
            return one_mb_line()
        return (FILES / (self.source or f"{self.name}.{_format(self.unit).extension}")).read_bytes()


CASES = (
    Case("truncated_file", "socialtjanst", "ekonomiskt_bistand", "ERROR", "truncated_file", 4),
    # cut inside its last field: the forecast 28515,00 reads as 285, so the whole file waits for a resend
    Case("cut_inside_last_field", "ekonomi", "utfall", "ERROR", "truncated_file", 3),
    Case("wrong_delimiter", "socialtjanst", "ekonomiskt_bistand", "ERROR", "wrong_delimiter", 1),
    Case("latin1_read_as_utf8", "skola", "inskrivning", "ERROR", "wrong_encoding", 2),
    Case("utf8_read_as_cp1252", "socialtjanst", "ekonomiskt_bistand", "ERROR", "wrong_encoding", 1),
    # Excel's "Unicode text" (UTF-16 with a byte-order mark, tabs) where the contract says cp1252
    Case("utf16_not_in_contract", "socialtjanst", "ekonomiskt_bistand", "ERROR", "wrong_encoding", 1),
    Case("binary_garbage", "socialtjanst", "ekonomiskt_bistand", "ERROR", "binary_content", 1),
    Case("empty_file", "socialtjanst", "ekonomiskt_bistand", "ERROR", "empty_file"),
    Case("extra_column", "socialtjanst", "ekonomiskt_bistand", "ERROR", "columns_differ_from_contract", 1),
    Case("missing_column", "socialtjanst", "ekonomiskt_bistand", "ERROR", "columns_differ_from_contract", 1),
    Case("missing_header", "socialtjanst", "ekonomiskt_bistand", "ERROR", "columns_differ_from_contract", 1),
    Case("duplicated_header", "socialtjanst", "ekonomiskt_bistand", "ERROR", "duplicated_header", 4),
    Case("ragged_row", "socialtjanst", "ekonomiskt_bistand", "ERROR", "extra_fields", 3),
    # a separator inside a quoted value is no field of its own; a row short or long of fields still is
    Case(
        "quoted_separator_then_short_row", "socialtjanst", "ekonomiskt_bistand", "ERROR", "missing_fields", 3
    ),
    Case("quoted_separator_then_long_row", "socialtjanst", "ekonomiskt_bistand", "ERROR", "extra_fields", 3),
    Case("one_mb_line", "socialtjanst", "ekonomiskt_bistand", "ERROR", "line_too_long", 3),
    Case("truncated", "vard_omsorg", "hemtjanst", "ERROR", "unreadable_parquet"),
    Case("truncated", "e_tjanster", "inlamningar", "ERROR", "unreadable_json_lines", 3),
    Case(
        "dates_in_three_formats",
        "socialtjanst",
        "barnutredningar",
        "ERROR",  # two rows of three broken: the file is systematically wrong
        rows=((3, "not_a_date", "Startdatum"), (4, "not_a_date", "Startdatum")),
    ),
    Case(
        "negative_amount",
        "socialtjanst",
        "ekonomiskt_bistand",
        "WARN",
        rows=((3, "below_minimum", "Belopp"),),
    ),
    Case(
        "quoted_separator",
        "socialtjanst",
        "ekonomiskt_bistand",
        "WARN",
        rows=((2, "value_not_allowed", "Hushållstyp"),),
    ),
    Case(
        "bad_check_digit",
        "socialtjanst",
        "ekonomiskt_bistand",
        "WARN",
        rows=((2, "invalid_personnummer", "Personnr"),),
    ),
)


def one_mb_line() -> bytes:
    """A valid socialtjänst file whose second row carries a 1 MB household type."""
    lines = [
        "Personnr;Månad;Belopp;Hushållstyp",
        f"811218-9876;2024-02;4512,50;{ALONE}",
        "900101-0017;2024-02;100,00;" + "x" * 1_000_000,
        f"121212-1212;2024-02;300,00;{ALONE}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


# Valid rows of every dataset of the units the corpus uses, by month ('{m}' = YYYY-MM).
GOOD: dict[str, dict[str, list[dict[str, str]]]] = {
    "socialtjanst": {
        "ekonomiskt_bistand": [
            {"Personnr": "811218-9876", "Månad": "{m}", "Belopp": "4512,50", "Hushållstyp": ALONE},
            {"Personnr": "900101-0017", "Månad": "{m}", "Belopp": "1 200,75", "Hushållstyp": "Sammanboende"},
        ],
        "barnutredningar": [
            {"Personnr": "121212-1212", "Startdatum": "{m}-03", "Avslutsdatum": "", "Anledning": "Anmälan"}
        ],
    },
    "ekonomi": {
        "utfall": [
            {
                "Månad": "{m}",
                "Förvaltning": "Socialförvaltningen",
                "Enhet": "Enhet A",
                "Budget": "30 000,00",
                "Utfall": "28 000,00",
                "Prognos": "28515,00",
            }
        ]
    },
    "skola": {
        "inskrivning": [
            {"personnummer": "201012121230", "skolenhet": "Björkskolan", "arskurs": "5"},
            {"personnummer": "200903154565", "skolenhet": "Ängsskolan", "arskurs": "9"},
        ],
        "franvaro": [
            {
                "personnummer": "201012121230",
                "termin": "HT",
                "franvaro_procent": "3.5",
                "ogiltig_franvaro_procent": "0.5",
            }
        ],
        "meritvarde": [{"personnummer": "200903154565", "lasar": "2023/24", "meritvarde": "245"}],
    },
    "vard_omsorg": {
        "hemtjanst": [
            {
                "personnummer": "19400101-0018",
                "manad": "{m}",
                "beviljade_timmar": "10.5",
                "utforda_timmar": "9",
            }
        ],
        "sarskilt_boende": [
            {"personnummer": "19350315-4563", "inflyttningsdatum": "{m}-10", "boende": "Solgården"}
        ],
        "trygghetslarm": [{"personnummer": "19400101-0018", "manad": "{m}", "antal_larm": "3"}],
    },
    "e_tjanster": {
        "inlamningar": [
            {
                "inlamning_id": "E{m}-1",
                "etjanst": "Parkering",
                "kanal": "digital",
                "inkommen": "{m}-03 10:00:00",
                "personnummer": "198112189876",
            }
        ]
    },
}


def write_good(home: Paths, unit: str, month: str, skip: str | None = None) -> list[Path]:
    """Write a valid delivery of every dataset the unit sends in that month (except ``skip``)."""
    u, written = UNITS[unit], []
    for ds in u.datasets:
        if Delivery.parse(month).month not in ds.delivered_in_months or ds.name == skip:
            continue
        rows = [{k: v.replace("{m}", month) for k, v in row.items()} for row in GOOD[unit][ds.name]]
        written.append(write_file(home, unit, month, ds.name, encode(unit, ds.name, rows)))
    return written


def write_file(home: Paths, unit: str, month: str, dataset: str, content: bytes) -> Path:
    u = UNITS[unit]
    path = home.delivery_dir(unit, month) / u.dataset(dataset).file_name(u.format)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def encode(unit: str, dataset: str, rows: list[dict[str, str]]) -> bytes:
    u = UNITS[unit]
    columns = [c.source for c in u.dataset(dataset).columns]
    match u.format:
        case Csv(encoding=encoding, separator=sep):
            lines = [sep.join(columns), *(sep.join(r[c] for c in columns) for r in rows)]
            return "".join(f"{line}\r\n" for line in lines).encode(encoding)
        case Parquet():
            frame = pl.DataFrame(
                {c: [r[c] for r in rows] for c in columns}, schema=dict.fromkeys(columns, pl.String)
            )
            buf = io.BytesIO()
            frame.write_parquet(buf)
            return buf.getvalue()
        case JsonLines():
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    raise ValueError(u.format)


def _format(unit: str):
    return UNITS[unit].format
