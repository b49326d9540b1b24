"""Personnummer validation and keyed pseudonyms as DuckDB SQL, so the border is vectorised.

Personnummer are written as YYYYMMDDNNNC, YYYYMMDD-NNNC, YYMMDD-NNNC, YYMMDD+NNNC
(aged 100 or more) or YYMMDDNNNC; samordningsnummer add 60 to the day. A
ten-digit form gets its century from the delivery's reference year. The check
digit C is the Luhn digit over YYMMDDNNN; birth number NNN 000 is never issued.

Free text is scanned in the same pass (:data:`_FREE_TEXT`): every run of digits with
separators inside it that holds ten digits which could be a personnummer (Luhn check digit,
month 01-12, day 01-31 or 61-91 for samordningsnummer) at any offset is a hit, whatever the
form (12 or 10 digits, '-', '+' or none); the whole run is masked. The check digit keeps order
and case numbers mostly intact; the loose date test and the any-offset window make the mask
err on the side of hiding. E-mail addresses and phone numbers are masked where a contract asks.

DuckDB has no HMAC function; HMAC-SHA256 is spelled out with sha256() over the
padded key, which is passed as a query parameter and never written into SQL text.
"""

from __future__ import annotations

import duckdb

from pipelines.border.keys import HmacKey

_PATTERN = r"^(\d{2})?(\d{2})(\d{2})(\d{2})([-+]?)(\d{3})(\d)$"
# Luhn over the nine digits YYMMDDNNN read as one integer n: digit i is n // 10^(8 - i) % 10, and a
# doubled digit d adds its digit sum, 2d - 9 when d >= 5 (integer arithmetic: no string per digit).
_LUHN_TERMS = " + ".join(
    f"n // {10 ** (8 - i)} % 10"
    if i % 2
    else f"(2 * (n // {10 ** (8 - i)} % 10) - 9 * (n // {10 ** (8 - i)} % 10 >= 5)::INT)"
    for i in range(9)
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
    f"""CREATE OR REPLACE TEMP MACRO luhn_sum(n) AS {_LUHN_TERMS}""",
    """CREATE OR REPLACE TEMP MACRO luhn_digit(t) AS (10 - luhn_sum(TRY_CAST(t AS BIGINT)) % 10) % 10""",
    # A calendar date by arithmetic (a samordningsnummer's day less 60): no date string to parse.
    """CREATE OR REPLACE TEMP MACRO is_date(y, m, d) AS m BETWEEN 1 AND 12 AND d >= 1 AND d <= CASE
        WHEN m = 2 THEN 28 + (y % 4 = 0 AND (y % 100 <> 0 OR y % 400 = 0))::INT
        WHEN m IN (4, 6, 9, 11) THEN 30 ELSE 31 END""",
    # The ``_in`` forms take the year already computed (a column): expanded inline, pnr_year would be
    # computed again for each of the five times is_date reads it.
    """CREATE OR REPLACE TEMP MACRO pnr_valid_in(p, year) AS p.yy <> ''
        AND luhn_digit(p.yy || p.mm || p.dd || p.nnn) = TRY_CAST(p.c AS INT)
        AND is_date(year, TRY_CAST(p.mm AS INT), (TRY_CAST(p.dd AS INT) - 1) % 60 + 1)
        AND p.dd NOT IN ('00', '60')
        AND p.nnn <> '000'""",
    """CREATE OR REPLACE TEMP MACRO pnr_valid(p, ref_year) AS pnr_valid_in(p, pnr_year(p, ref_year))""",
    """CREATE OR REPLACE TEMP MACRO pnr_twelve_in(p, year) AS year::VARCHAR || p.mm || p.dd || p.nnn || p.c""",
    """CREATE OR REPLACE TEMP MACRO pnr_twelve(p, ref_year) AS pnr_twelve_in(p, pnr_year(p, ref_year))""",
    """CREATE OR REPLACE TEMP MACRO pnr_sex(p) AS
        CASE WHEN p.nnn = '' THEN NULL WHEN TRY_CAST(substr(p.nnn, 3, 1) AS INT) % 2 = 1 THEN 'M' ELSE 'K' END""",
)


PNR_MASK = "<personnummer>"
_DIGIT_RUN = r"[0-9][0-9+-]*[0-9]"
_TEN_DIGIT_RUN = r"[0-9](?:[-+]*[0-9]){9}"  # a digit run of at least ten digits, as pnr_in_digits needs
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_PHONE = r"(?:\+46|0046)[ -]?(?:\(0\))?[ -]?[1-9](?:[ -]?[0-9]){6,9}|\b0[1-9](?:[ -]?[0-9]){6,9}\b"

_CANDIDATE = r"[0-9]{6}(?:[0-9]{2})?[-+]?[0-9]{4}"  # what quarantine masks without asking Luhn

# Short expressions on purpose: a macro is expanded wherever it is used and the border query is
# planned once per file, so a long expansion costs more than scanning a small delivery.
_FREE_TEXT = (
    """CREATE OR REPLACE TEMP MACRO luhn_ok10(d) AS list_sum(list_transform(range(10), lambda i:
        ((2 - i % 2) * (ascii(substr(d, i + 1, 1)) - 48)) // 10
        + ((2 - i % 2) * (ascii(substr(d, i + 1, 1)) - 48)) % 10)) % 10 = 0""",
    """CREATE OR REPLACE TEMP MACRO pnr_plausible(d) AS luhn_ok10(d)
        AND substr(d, 3, 2) BETWEEN '01' AND '12'
        AND (substr(d, 5, 2) BETWEEN '01' AND '31' OR substr(d, 5, 2) BETWEEN '61' AND '91')""",
    """CREATE OR REPLACE TEMP MACRO pnr_in_digits(d) AS length(d) >= 10
        AND len(list_filter(range(length(d) - 9), lambda k: pnr_plausible(substr(d, k + 1, 10)))) > 0""",
    # The cheap test first: a hit needs ten digits in one run (separators allowed between them), which
    # case and order numbers of eight digits do not have.
    f"""CREATE OR REPLACE TEMP MACRO pnr_hits(s) AS CASE WHEN regexp_matches(s, '{_TEN_DIGIT_RUN}')
        THEN list_filter(regexp_extract_all(s, '{_DIGIT_RUN}'),
            lambda t: pnr_in_digits(regexp_replace(t, '[-+]', '', 'g')))
        ELSE [] END""",
    # Hits are whole digit runs; an alternation of them masks each where it stands.
    f"""CREATE OR REPLACE TEMP MACRO pnr_masked(s, hits) AS CASE WHEN len(hits) = 0 THEN s
        ELSE regexp_replace(s, replace(array_to_string(hits, '|'), '+', '\\+'), '{PNR_MASK}', 'g') END""",
    f"""CREATE OR REPLACE TEMP MACRO pnr_candidates_masked(s) AS
        regexp_replace(s, '{_CANDIDATE}', '{PNR_MASK}', 'g')""",
    f"""CREATE OR REPLACE TEMP MACRO contacts_masked(s) AS
        regexp_replace(regexp_replace(s, '{_EMAIL}', '<e-post>', 'g'), '{_PHONE}', '<telefon>', 'g')""",
    f"""CREATE OR REPLACE TEMP MACRO contacts_count(s) AS len(regexp_extract_all(s, '{_EMAIL}'))
        + len(regexp_extract_all(regexp_replace(s, '{_EMAIL}', '', 'g'), '{_PHONE}'))""",
)


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the personnummer and free-text macros on a connection (temporary: nothing is persisted)."""
    for macro in (*_MACROS, *_FREE_TEXT):
        con.execute(macro).fetchall()


def hmac_sql(value_sql: str, param: str) -> str:
    """SQL for HMAC-SHA256 (hex) of a VARCHAR expression under the key bound as ``param``."""
    return f"sha256(${param}_opad || unhex(sha256(${param}_ipad || encode({value_sql}))))"


def hmac_params(param: str, key: HmacKey) -> dict[str, bytes]:
    """Query parameters that bind a key for :func:`hmac_sql`."""
    return {f"{param}_ipad": key.inner_pad, f"{param}_opad": key.outer_pad}
