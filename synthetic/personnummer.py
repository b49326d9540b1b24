"""Personnummer: drawing unique numbers, the Luhn check digit, and the written forms.

A person's number is kept internally in the twelve-digit form YYYYMMDDNNNC
(day + 60 for a samordningsnummer). Each unit writes it in its own style
(`Unit.personnummer_style`):

- ``twelve``         YYYYMMDDNNNC
- ``twelve_hyphen``  YYYYMMDD-NNNC
- ``ten_separator``  YYMMDD-NNNC, with '+' instead of '-' from the calendar
                     year the person turns 100 (Skatteverket's rule), judged
                     at the delivery month. Year-based, so that a reader
                     inferring the century from the delivery year (base year
                     minus 100 for '+') always gets the right birth year; a
                     birthday-based '+' would send a 99-year-old whose 100th
                     birthday is later in the delivery year a century forward.
- ``mixed``          per row one of the three above or YYMMDDNNNC (ten digits,
                     no separator). A number that takes '+' is never written
                     as ten digits without separator: without the '+' it would
                     name someone born a century later.

The check digit C is the Luhn digit over YYMMDDNNN; the last N (second-to-last
digit) is odd for men and even for women. Numbers are unique in their ten-digit
form, so they are unique in every written form.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from synthetic.period import ymd

_LUHN_WEIGHTS = np.array([2, 1, 2, 1, 2, 1, 2, 1, 2])


def luhn_digit(nine_digits: np.ndarray) -> np.ndarray:
    """Luhn check digit for each row of an (n, 9) array of digits YYMMDDNNN."""
    p = np.asarray(nine_digits) * _LUHN_WEIGHTS
    p = p - 9 * (p > 9)
    return (10 - p.sum(axis=1) % 10) % 10


def draw_serials(
    rng: np.random.Generator, birth_days: np.ndarray, male: np.ndarray, samordning: np.ndarray
) -> np.ndarray:
    """Birth numbers NNN (1..999) with the sex parity in the last digit, unique per ten-digit number."""
    n = len(birth_days)
    y, m, d = ymd(birth_days)
    date_key = ((y % 100) * 10_000 + m * 100 + d + 60 * samordning.astype(np.int64)).astype(np.int64)
    parity = np.asarray(male, dtype=np.int64) % 2
    serial = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        # First two digits 00..99, last digit of the right parity; 000 is not a valid number.
        draw = rng.integers(0, 100, len(todo)) * 10 + rng.integers(0, 5, len(todo)) * 2 + parity[todo]
        draw = np.where(draw == 0, 2, draw)
        serial[todo] = draw
        key = date_key * 1000 + serial
        order = np.argsort(key, kind="stable")
        dup = np.zeros(n, dtype=bool)
        dup[order[1:]] = key[order[1:]] == key[order[:-1]]
        todo = np.flatnonzero(dup)
    return serial


def twelve_digit(birth_days: np.ndarray, serial: np.ndarray, samordning: np.ndarray) -> np.ndarray:
    """The YYYYMMDDNNNC strings (numpy unicode array) for the given people."""
    y, m, d = ymd(birth_days)
    d = d + 60 * np.asarray(samordning, dtype=np.int64)
    nine = np.stack(
        [
            (y // 10) % 10, y % 10, m // 10, m % 10, d // 10, d % 10,
            serial // 100, (serial // 10) % 10, serial % 10,
        ],
        axis=1,
    )  # fmt: skip
    check = luhn_digit(nine)
    number = (y * 10_000 + m * 100 + d) * 10_000 + serial * 10 + check
    return number.astype("U12")


def plus_sign(birth_year: pl.Expr, year: pl.Expr) -> pl.Expr:
    """True where the person turns 100 in `year` or turned 100 before (the '+' separator)."""
    return birth_year + 100 <= year


def written(pnr12: pl.Expr, plus: pl.Expr, style: str, form: pl.Expr | None = None) -> pl.Expr:
    """Expression writing twelve-digit numbers in a unit's style.

    For ``mixed``, `form` (integers 0..3) picks per row: 0 twelve, 1 twelve
    with hyphen, 2 ten with separator, 3 ten without separator.
    """
    twelve = pnr12
    hyphen = pnr12.str.slice(0, 8) + pl.lit("-") + pnr12.str.slice(8, 4)
    ten_sep = (
        pnr12.str.slice(2, 6) + pl.when(plus).then(pl.lit("+")).otherwise(pl.lit("-")) + pnr12.str.slice(8, 4)
    )
    ten = pnr12.str.slice(2, 10)
    if style == "twelve":
        return twelve
    if style == "twelve_hyphen":
        return hyphen
    if style == "ten_separator":
        return ten_sep
    if style == "mixed":
        if form is None:
            raise ValueError("mixed style needs a form per row")
        return (
            pl.when(form == 0)
            .then(twelve)
            .when(form == 1)
            .then(hyphen)
            .when((form == 2) | plus)
            .then(ten_sep)
            .otherwise(ten)
        )
    raise ValueError(f"unknown personnummer style {style!r}")
