"""The cross-unit zone: where units are joined on the central citizen key.

The central key is derived here and nowhere else: from the linkage vault's
token of each unit pseudonym, under the central key. Unit zones never hold it.
The citizen index is the zone's register (one row per person known to
folkbokföring); each unit's person data is linked to it in its own schema.
Steward approval (which unit shares what) gates this linking: see issue 4.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from pipelines.assets.units import unit_asset_key
from pipelines.border.sql import hmac_params, hmac_sql
from pipelines.resources import Platform
from pipelines.units import UNITS, Unit
from warehouse.layout import Warehouse, connect, run

CITIZEN_KEY = hmac_sql("link.link_token", "central")
ENTRY_EVENTS = "('GRUND', 'FODD', 'INFLYTTAD')"
EXIT_EVENTS = "('UTFLYTTAD', 'AVLIDEN')"
_RETRY = dg.RetryPolicy(max_retries=3, delay=5)  # a unit load may briefly hold a zone's lock

CITIZEN_INDEX_SQL = f"""
CREATE OR REPLACE TABLE citizen_index AS
WITH events AS (
    SELECT a.*, link.link_token
    FROM unit.aviseringar a JOIN vault.link link USING (person_pseudonym)
),
person AS (
    SELECT link_token,
        any_value(birth_year) AS birth_year,
        any_value(sex) AS sex,
        arg_max(district, event_date) FILTER (event NOT IN {EXIT_EVENTS}) AS district,
        arg_max(household_key, event_date) FILTER (event NOT IN {EXIT_EVENTS}) AS household_key,
        min(event_date) FILTER (event IN {ENTRY_EVENTS}) AS first_entry,
        max(event_date) FILTER (event IN {ENTRY_EVENTS}) AS last_entry,
        max(event_date) FILTER (event IN {EXIT_EVENTS}) AS last_exit
    FROM events GROUP BY link_token
)
SELECT {CITIZEN_KEY} AS citizen_key, birth_year, sex, district, household_key,
    coalesce(first_entry, (SELECT min(event_date) FROM events)) AS valid_from,
    CASE WHEN last_exit >= coalesce(last_entry, last_exit) THEN last_exit END AS valid_to
FROM person link
ORDER BY citizen_key
"""


@dg.asset(
    key=dg.AssetKey(["cross_unit", "citizen_index"]),
    deps=[unit_asset_key("folkbokforing")],
    group_name="cross_unit",
    description="One row per person known to folkbokföring, keyed by the central citizen key: "
    "birth year, sex, district, household key, valid from/to. No birth date, name or address.",
    pool="duckdb_cross_unit",
    kinds={"duckdb"},
    retry_policy=_RETRY,
    automation_condition=dg.AutomationCondition.eager(),
)
def citizen_index(platform: Platform) -> dg.MaterializeResult:
    wh = platform.warehouse
    with _cross_unit(wh, "folkbokforing") as con:
        run(con, CITIZEN_INDEX_SQL, hmac_params("central", platform.keyring().central()))
        rows, living = run(con, "SELECT count(*), count(*) FILTER (valid_to IS NULL) FROM citizen_index")[0]
    return dg.MaterializeResult(metadata={"persons": rows, "currently_registered": living})


def build_link_asset(unit: Unit) -> dg.AssetsDefinition:
    datasets = [d for d in unit.datasets if d.person_column]

    @dg.asset(
        key=dg.AssetKey(["cross_unit", unit.name]),
        deps=[unit_asset_key(unit.name), citizen_index.key],
        group_name="cross_unit",
        description=f"{unit.title} linked on the central citizen key "
        f"(tables {', '.join(f'{unit.name}.{d.name}' for d in datasets)}).",
        pool="duckdb_cross_unit",
        kinds={"duckdb"},
        retry_policy=_RETRY,
        automation_condition=dg.AutomationCondition.eager(),
    )
    def _link(platform: Platform) -> dg.MaterializeResult:
        metadata = {}
        with _cross_unit(platform.warehouse, unit.name) as con:
            run(con, f"CREATE SCHEMA IF NOT EXISTS {unit.name}")
            central = hmac_params("central", platform.keyring().central())
            for d in datasets:
                run(con, _link_sql(unit.name, d.name), central)
                metadata[d.name] = run(con, f"SELECT count(*) FROM {unit.name}.{d.name}")[0][0]
                metadata[f"{d.name}_unknown_to_folkbokforing"] = run(
                    con,
                    f"SELECT count(*) FROM {unit.name}.{d.name} WHERE citizen_key IS NOT NULL "
                    "AND NOT known_to_folkbokforing",
                )[0][0]
        return dg.MaterializeResult(metadata=metadata)

    return _link


def _link_sql(unit: str, dataset: str) -> str:
    return f"""
        CREATE OR REPLACE TABLE {unit}.{dataset} AS
        SELECT CASE WHEN link.link_token IS NOT NULL THEN {CITIZEN_KEY} END AS citizen_key,
            d.* EXCLUDE (person_pseudonym, key_version),
            ci.citizen_key IS NOT NULL AS known_to_folkbokforing
        FROM unit.{dataset} d
        LEFT JOIN vault.link link USING (person_pseudonym)
        LEFT JOIN citizen_index ci ON ci.citizen_key = {CITIZEN_KEY}
    """


@contextmanager
def _cross_unit(wh: Warehouse, unit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the cross-unit zone for writing with one unit zone and its vault attached read-only."""
    attached = {"unit": wh.unit_zone(unit), "vault": wh.vault(unit)}
    for path in attached.values():
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: materialise units/{unit} first")
    with connect(wh.cross_unit) as con:
        for alias, path in attached.items():
            run(con, f"ATTACH '{path}' AS {alias} (READ_ONLY)")
        yield con


LINK_ASSETS = [build_link_asset(u) for u in UNITS.values() if u.has_persons and u.name != "folkbokforing"]
