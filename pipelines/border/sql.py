"""Personnummer validation and keyed pseudonyms as DuckDB SQL, so the border is vectorised.

Personnummer are written as YYYYMMDDNNNC, YYYYMMDD-NNNC, YYMMDD-NNNC, YYMMDD+NNNC
(aged 100 or more) or YYMMDDNNNC; samordningsnummer add 60 to the day. A
ten-digit form gets its century from the delivery's reference year. The check
digit C is the Luhn digit over YYMMDDNNN; birth number NNN 000 is never issued.

DuckDB has no HMAC function; HMAC-SHA256 is spelled out with sha256() over the
padded key, which is passed as a query parameter and never written into SQL text.
"""

from __future__ import annotations

import duckdb

from pipelines.border.keys import HmacKey

_PATTERN = r"^(\d{2})?(\d{2})(\d{2})(\d{2})([-+]?)(\d{3})(\d)$"
_LUHN_TERMS = " + ".join(
    f"(({w} * TRY_CAST(substr(t, {i + 1}, 1) AS INT)) // 10 + ({w} * TRY_CAST(substr(t, {i + 1}, 1) AS INT)) % 10)"
    for i, w in enumerate([2, 1, 2, 1, 2, 1, 2, 1, 2])
)

_MACROS = (
    f"""CREATE OR REPLACE TEMP MACRO pnr_parts(s) AS regexp_extract(
        regexp_replace(coalesce(s, ''), '\\s', '', 'g'), '{_PATTERN}',
        ['cc', 'yy', 'mm', 'dd', 'sep', 'nnn', 'c'])""",
    """CREATE OR REPLACE TEMP MACRO pnr_base_year(p, ref_year) AS
        ref_year - CASE WHEN p.sep = '+' THEN 100 ELSE 0 END""",
    """CREATE OR REPLACE TEMP MACRO pnr_year(p, ref_year) AS CASE
        WHEN p.yy = '' THEN NULL
        WHEN p.cc <> '' THEN TRY_CAST(p.cc || p.yy AS INT)
        ELSE pnr_base_year(p, ref_year) - ((pnr_base_year(p, ref_year) - TRY_CAST(p.yy AS INT)) % 100) END""",
    f"""CREATE OR REPLACE TEMP MACRO luhn_digit(t) AS (10 - ({_LUHN_TERMS}) % 10) % 10""",
    """CREATE OR REPLACE TEMP MACRO pnr_valid(p, ref_year) AS p.yy <> ''
        AND luhn_digit(p.yy || p.mm || p.dd || p.nnn) = TRY_CAST(p.c AS INT)
        AND try_strptime(pnr_year(p, ref_year)::VARCHAR || p.mm
            || lpad(((TRY_CAST(p.dd AS INT) - 1) % 60 + 1)::VARCHAR, 2, '0'), '%Y%m%d') IS NOT NULL
        AND p.dd NOT IN ('00', '60')
        AND p.nnn <> '000'""",
    """CREATE OR REPLACE TEMP MACRO pnr_twelve(p, ref_year) AS
        pnr_year(p, ref_year)::VARCHAR || p.mm || p.dd || p.nnn || p.c""",
    """CREATE OR REPLACE TEMP MACRO pnr_sex(p) AS
        CASE WHEN p.nnn = '' THEN NULL WHEN TRY_CAST(substr(p.nnn, 3, 1) AS INT) % 2 = 1 THEN 'M' ELSE 'K' END""",
)


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the personnummer macros on a connection (temporary: nothing is persisted)."""
    for macro in _MACROS:
        con.execute(macro).fetchall()


def hmac_sql(value_sql: str, param: str) -> str:
    """SQL for HMAC-SHA256 (hex) of a VARCHAR expression under the key bound as ``param``."""
    return f"sha256(${param}_opad || unhex(sha256(${param}_ipad || encode({value_sql}))))"


def hmac_params(param: str, key: HmacKey) -> dict[str, bytes]:
    """Query parameters that bind a key for :func:`hmac_sql`."""
    return {f"{param}_ipad": key.inner_pad, f"{param}_opad": key.outer_pad}
