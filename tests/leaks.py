"""Find personnummer, in any written form, in what the platform wrote.

The forms come from the landing files (the only place raw numbers may exist):
every digit run that looks like a personnummer, and for each valid one every
form it can be written in (12 digits, with '-', 10 digits with '-', '+' or none).
DuckDB files are read through DuckDB (their pages are compressed), everything
else byte by byte.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl
from personnummer import personnummer as oracle

CANDIDATE = r"[0-9]{6,8}[-+]?[0-9]{4}"
_CANDIDATE = re.compile(CANDIDATE.encode())


def forms_in_landing(landing: Path) -> set[str]:
    written: set[str] = set()
    for path in landing.rglob("*"):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path).select(pl.all().cast(pl.String))
            text = "\n".join(str(v) for col in frame.iter_columns() for v in col if v is not None).encode()
        elif path.is_file():
            text = path.read_bytes()
        else:
            continue
        written |= {m.decode() for m in _CANDIDATE.findall(text)}
    return {form for w in written for form in all_forms(w)}


def all_forms(written: str) -> set[str]:
    digits = re.sub(r"[-+]", "", written)
    forms = {written, digits}
    try:
        pnr = oracle.parse(written)
    except oracle.PersonnummerException:
        return forms
    twelve = pnr.format(True).replace("-", "").replace("+", "")
    ten = twelve[2:]
    return forms | {twelve, f"{twelve[:8]}-{twelve[8:]}", ten, f"{ten[:6]}-{ten[6:]}", f"{ten[:6]}+{ten[6:]}"}


def hits_in_files(root: Path, forms: set[str], skip: tuple[Path, ...] = ()) -> dict[str, set[str]]:
    """Byte scan of every file under root (DuckDB files too, for whatever is stored uncompressed)."""
    hits: dict[str, set[str]] = {}
    for path in root.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            found = {m.decode() for m in _CANDIDATE.findall(path.read_bytes())} & forms
            if found:
                hits[str(path)] = found
    return hits


def hits_in_duckdb(path: Path, forms: set[str]) -> dict[str, set[str]]:
    """Every value of every column of every table, cast to text, searched for personnummer."""
    hits: dict[str, set[str]] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        for schema, table in tables:
            for (column,) in con.execute(
                f'SELECT column_name FROM (DESCRIBE "{schema}"."{table}")'
            ).fetchall():
                found = con.execute(
                    f"""SELECT DISTINCT unnest(regexp_extract_all("{column}"::VARCHAR, '{CANDIDATE}'))
                        FROM "{schema}"."{table}" """
                ).fetchall()
                if leaked := {v for (v,) in found} & forms:
                    hits[f"{path.name}:{schema}.{table}.{column}"] = leaked
    return hits
