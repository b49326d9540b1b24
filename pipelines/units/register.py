"""Folkbokföring's events in the order they happened, for everything that asks a person's latest state.

By date, and on one date as the register delivered them (its later delivery, its later line): two moves
on one day then give the same answer however DuckDB happens to store or scan the rows.
"""

EVENT_ORDER = ("event_date", "_delivery", "_source_line")


def in_order(alias: str = "") -> str:
    """The order as a row value (for ``arg_max``); ``alias`` prefixes each column, e.g. ``"a."``."""
    return "(" + ", ".join(alias + column for column in EVENT_ORDER) + ")"
