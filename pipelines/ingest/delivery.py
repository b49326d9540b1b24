"""Load one unit's monthly delivery into its zone: every row loaded or quarantined, atomically.

A daily dataset's delivery is its month's folder with a file per day; the month is loaded whole.

A delivery (``landing/<unit>/<YYYY-MM>/``) replaces its partition in one DuckDB
transaction, so a rerun gives the same tables and a killed load leaves the
previous state. Per file, ``reconciliation`` records rows in the file = rows
loaded + rows quarantined; a file that cannot be read at all is quarantined
whole with its reason, and the unit's other files and months are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines.border.keys import Keyring
from pipelines.border.sql import hmac_params, install_macros
from pipelines.ingest.months import Delivery, fingerprint
from pipelines.ingest.read import LINE, DeliveryError, read_delivery_file
from pipelines.ingest.transform import BORDER_ONLY, FILE, IDENTIFIERS, LINK_TOKEN, border_query
from pipelines.quality import gate
from pipelines.units.spec import Dataset, Unit
from warehouse.layout import Warehouse, connect, run, used

log = logging.getLogger(__name__)

QUARANTINE_DDL = """CREATE TABLE IF NOT EXISTS quarantine (
    dataset VARCHAR, _delivery VARCHAR, _source_file VARCHAR, _source_line BIGINT,
    rule VARCHAR, "column" VARCHAR, raw_values JSON, _loaded_at TIMESTAMP)"""
RECONCILIATION_DDL = """CREATE TABLE IF NOT EXISTS reconciliation (
    dataset VARCHAR, _delivery VARCHAR, _source_file VARCHAR, rows_in_file BIGINT,
    rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, reason VARCHAR, _loaded_at TIMESTAMP,
    identifiers_masked BIGINT)"""
# Zones made before the free-text scan get the column; NULL there means "not scanned".
RECONCILIATION_MIGRATION = "ALTER TABLE reconciliation ADD COLUMN IF NOT EXISTS identifiers_masked BIGINT"
# Every load of a delivery, in order: what its folder held (``months.fingerprint``) and what it replaced.
DELIVERIES_DDL = """CREATE TABLE IF NOT EXISTS deliveries (
    _delivery VARCHAR, fingerprint VARCHAR, replaces VARCHAR, _loaded_at TIMESTAMP)"""
# One row per pseudonym, kept by the anti-join in ``_write_vault`` (the one writer of a unit's vault):
# a primary key's index cost more than the rest of a large month's load to maintain.
VAULT_DDL = """CREATE TABLE IF NOT EXISTS vault.link (
    person_pseudonym VARCHAR NOT NULL, link_token VARCHAR NOT NULL, key_version VARCHAR NOT NULL)"""


@dataclass(frozen=True)
class FileResult:
    dataset: str
    source_file: str
    rows_in_file: int | None
    rows_loaded: int
    rows_quarantined: int | None
    status: str  # loaded | rejected | missing | misnamed (a daily file named for no day of its month)
    reason: str | None = None
    identifiers_masked: int = 0  # personnummer (and contacts) typed into free text, masked at the border
    staged: str = ""  # the temp table holding the file's rows after the border query
    part: int | None = None  # a daily file's index in ``staged``, which holds its month's files (``FILE``)


def load_delivery(
    unit: Unit, delivery: str, landing: Path, warehouse: Warehouse, keys: Keyring
) -> list[FileResult]:
    """Load every dataset file of one delivery; return what happened to each file."""
    [(_, results)] = load_deliveries(unit, [delivery], landing, warehouse, keys)
    return results


def load_deliveries(
    unit: Unit, deliveries: list[str], landing: Path, warehouse: Warehouse, keys: Keyring
) -> Iterator[tuple[str, list[FileResult]]]:
    """Load deliveries in order, yielding each one's file results as it is stored.

    A backfill shares one zone connection (and the attached vault): opening, checkpointing
    and closing a DuckDB file per month cost more than loading a small month. Each delivery
    still replaces its partition in a transaction of its own.
    """
    for delivery in deliveries:
        if not (landing / unit.name / delivery).is_dir():
            raise FileNotFoundError(
                f"no delivery {delivery} from {unit.name}: {landing / unit.name / delivery}"
            )
    keyed = hmac_params("unit", keys.unit(unit.name)) | hmac_params("link", keys.link())
    keyed |= {"key_version": keys.version}
    with connect(warehouse.unit_zone(unit.name)) as con:
        install_macros(con)
        _ensure_tables(con, unit, keyed | {"ref_year": 2000})  # any year: only the output schema is used
        with _vault(con, unit, warehouse.vault(unit.name)):
            for delivery in deliveries:
                year = Delivery.parse(delivery).year
                results = _load(con, unit, delivery, landing, keyed | {"ref_year": year})
                _log(unit, delivery, results)
                yield delivery, results


def _load(con, unit: Unit, delivery: str, landing: Path, params: dict) -> list[FileResult]:
    loaded_at = datetime.now()
    folder = fingerprint(landing / unit.name / delivery)  # before reading: a file changing now reloads
    results = [
        r for ds in _expected(unit, delivery) for r in _stage_files(con, unit, ds, delivery, landing, params)
    ]
    _write_vault(con, unit, results)
    _replace_partition(con, unit, delivery, results, loaded_at, folder)
    return results


@dataclass(frozen=True)
class LoadState:
    """What a unit zone says of its deliveries: each one's fingerprint as last loaded, and those stored
    without a verdict (a load killed before its checks)."""

    loaded: dict[str, str]
    unchecked: set[str]

    def settled(self, month: str, folder_fingerprint: str) -> bool:
        """Loaded as its folder is now, and checked: nothing for a load to do."""
        return month not in self.unchecked and self.loaded.get(month) == folder_fingerprint


def load_state(zone: Path) -> LoadState | None:
    """The zone's load state, read in one connection; None while a load holds the zone's lock."""
    if not zone.exists():
        return LoadState({}, set())
    try:
        with connect(zone, read_only=True) as con:
            if not run(con, "SELECT 1 FROM duckdb_tables() WHERE table_name = 'deliveries'"):
                return LoadState({}, set())
            latest = "SELECT _delivery, arg_max(fingerprint, _loaded_at) FROM deliveries GROUP BY 1"
            held = "SELECT _delivery FROM held_deliveries WHERE checks = $c"
            return LoadState(dict(run(con, latest)), {d for (d,) in run(con, held, {"c": gate.UNCHECKED})})
    except duckdb.IOException:
        return None


def unsettled(zone: Path, landing: Path, months: list[str]) -> list[str] | None:
    """The months a load would change or check; None while a load holds the zone's lock."""
    state = load_state(zone)
    if state is None:
        return None
    return [m for m in months if not state.settled(m, fingerprint(landing / m))]


def _ensure_tables(con, unit: Unit, params: dict) -> None:
    """Create the dataset tables the zone lacks, and the quarantine and bookkeeping tables."""
    existing = {t for (t,) in run(con, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'")}
    for ds in unit.datasets:
        if ds.name not in existing:
            _ensure_table(con, ds, border_query(ds, unit.format).sql, params)
    for ddl in (
        QUARANTINE_DDL,
        RECONCILIATION_DDL,
        RECONCILIATION_MIGRATION,
        DELIVERIES_DDL,
        gate.HELD_DDL,
        gate.HELD_MIGRATION,
    ):
        run(con, ddl)


def _log(unit: Unit, delivery: str, results: list[FileResult]) -> None:
    for r in results:
        level = logging.DEBUG if r.status == "loaded" and not r.rows_quarantined else logging.INFO
        log.log(level, "%s %s %s: %s", unit.name, delivery, r.source_file, _describe(r))


def _expected(unit: Unit, delivery: str) -> list[Dataset]:
    month = Delivery.parse(delivery).month
    return [d for d in unit.datasets if month in d.delivered_in_months]


def _stage_files(
    con, unit: Unit, dataset: Dataset, delivery: str, landing: Path, params: dict
) -> list[FileResult]:
    """Stage every file of the dataset in the delivery: its one file, or each day's file of a daily
    dataset, with the days that have passed without a file and the files named for no day."""
    folder = landing / unit.name / delivery
    table = f"staged_{dataset.name}"
    if not dataset.daily:
        return [_stage(con, dataset, unit, folder / dataset.file_name(unit.format), landing, table, params)]
    files = dataset.files(folder, unit.format)
    return _stage_days(con, dataset, unit, files, landing, table, params) + _unaccounted(
        unit, dataset, delivery, landing, files
    )


def _stage_days(
    con, dataset: Dataset, unit: Unit, files: list[Path], landing: Path, table: str, params: dict
) -> list[FileResult]:
    """A daily dataset's files through one border query (planned per file it cost about 50 ms a day);
    each file is still counted and reconciled as a single file is, told apart in the table by ``FILE``."""
    read = {
        i: _read(con, dataset, unit, path, landing, f"{table}_rejected_{i}") for i, path in enumerate(files)
    }
    frames = [
        raw.with_columns(pl.lit(i, pl.Int64).alias(FILE)) for i, raw in read.items() if not _rejected(raw)
    ]
    counts = {}
    if frames:
        query = border_query(dataset, unit.format, by_file=True)
        con.register("raw", pl.concat(frames))
        run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS {query.sql}", used(query.sql, params))
        con.unregister("raw")
        counted = f"""SELECT {FILE}, count(*) FILTER (_rule IS NOT NULL), coalesce(sum({IDENTIFIERS}), 0)
                      FROM {table} GROUP BY 1"""
        counts = {i: (quarantined, masked) for i, quarantined, masked in run(con, counted)}
    results = []
    for i, raw in read.items():
        if _rejected(raw):
            results.append(raw)
            continue
        source = _source(files[i], landing)
        results.append(_loaded(dataset, source, raw.height, *counts.get(i, (0, 0)), table, part=i))
    return results


def _rejected(read: pl.DataFrame | FileResult) -> bool:
    return isinstance(read, FileResult)


def _unaccounted(
    unit: Unit, dataset: Dataset, delivery: str, landing: Path, files: list[Path]
) -> list[FileResult]:
    """A daily dataset's days that have ended without a file (``missing``: the source exports every day,
    an empty file for a day without records) and files named for no day of the month (``misnamed``);
    either holds the delivery, so a lost day is not published as a quiet one."""
    folder = landing / unit.name / delivery
    present = {dataset.day_of(p, unit.format) for p in files}
    missing = [
        FileResult(dataset.name, _source(folder / dataset.file_name(unit.format, day), landing), 0, 0, 0,
                   "missing", "file not delivered")
        for day in Delivery.parse(delivery).days_before(date.today())
        if day not in present
    ]  # fmt: skip
    misnamed = [
        FileResult(dataset.name, _source(p, landing), None, 0, None, "misnamed",
                   f"not_a_day_of_the_month: the file name names no day of {delivery} "
                   f"(expected {dataset.name}_{delivery}-DD.{unit.format.extension})")
        for p in dataset.stray_files(folder, unit.format)
    ]  # fmt: skip
    return missing + misnamed


def _source(path: Path, landing: Path) -> str:
    return str(path.relative_to(landing))


def _stage(
    con, dataset: Dataset, unit: Unit, path: Path, landing: Path, table: str, params: dict
) -> FileResult:
    """Run the border query over one file into the temp table ``table`` (pseudonyms only)."""
    source = _source(path, landing)
    if not path.exists():
        return FileResult(dataset.name, source, 0, 0, 0, "missing", "file not delivered")
    raw = _read(con, dataset, unit, path, landing, table)
    if _rejected(raw):
        return raw
    query = border_query(dataset, unit.format)
    con.register("raw", raw)
    run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS {query.sql}", used(query.sql, params))
    con.unregister("raw")
    quarantined, masked = run(
        con, f"SELECT count(*) FILTER (_rule IS NOT NULL), coalesce(sum({IDENTIFIERS}), 0) FROM {table}"
    )[0]
    return _loaded(dataset, source, raw.height, quarantined, masked, table)


def _loaded(
    dataset: Dataset,
    source: str,
    rows: int,
    quarantined: int,
    masked: int,
    staged: str,
    part: int | None = None,
) -> FileResult:
    """A file the border query ran over: its rows loaded or quarantined, staged in ``staged``."""
    return FileResult(
        dataset.name, source, rows, rows - quarantined, quarantined, "loaded", None, masked, staged, part
    )


def _read(
    con, dataset: Dataset, unit: Unit, path: Path, landing: Path, table: str
) -> pl.DataFrame | FileResult:
    """The file's rows as text, or the file rejected whole (the line it failed on kept in ``table``, from
    which quarantine takes it)."""
    try:
        return read_delivery_file(path, unit.format, dataset)
    except DeliveryError as e:
        run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT $line AS line", {"line": e.line})
        where = f" (line {e.line})" if e.line else ""
        reason = f"{e.rule}: {e.detail}{where}"
        return FileResult(
            dataset.name, _source(path, landing), e.rows, 0, e.rows, "rejected", reason, staged=table
        )


def _ensure_table(con, dataset: Dataset, sql: str, params: dict) -> None:
    """Create the dataset table from the border query's own output schema, so it never drifts."""
    empty = pl.DataFrame(
        {c.source: [] for c in dataset.columns} | {LINE: []}, schema_overrides={LINE: pl.Int64}
    )
    empty = empty.with_columns(pl.exclude(LINE).cast(pl.String))
    con.register("raw", empty)
    run(
        con,
        f"""CREATE TABLE IF NOT EXISTS {dataset.name} AS
            SELECT * EXCLUDE ({BORDER_ONLY}{_link_exclude(dataset)}),
                NULL::VARCHAR AS _source_file, NULL::VARCHAR AS _delivery, NULL::TIMESTAMP AS _loaded_at
            FROM ({sql}) WHERE false""",
        used(sql, params),
    )
    con.unregister("raw")


@contextmanager
def _vault(con, unit: Unit, vault_path: Path) -> Iterator[None]:
    """The unit's linkage vault, attached as ``vault`` for as long as the loads last (if it has persons)."""
    if not any(d.person_column for d in unit.datasets):
        yield
        return
    vault_path.parent.mkdir(parents=True, exist_ok=True)
    run(con, f"ATTACH '{vault_path}' AS vault")
    try:
        run(con, VAULT_DDL)
        yield
    finally:
        run(con, "DETACH vault")


def _write_vault(con, unit: Unit, results: list[FileResult]) -> None:
    """Record each new pseudonym's linkage token; idempotent, so a rerun or a killed load adds nothing
    twice."""
    with_person = [
        r.staged for r in results if r.status == "loaded" and unit.dataset(r.dataset).person_column
    ]
    if not with_person:
        return
    union = " UNION ".join(
        f"SELECT person_pseudonym, {LINK_TOKEN} AS link_token, key_version FROM {t} "
        "WHERE person_pseudonym IS NOT NULL AND _rule IS NULL"
        for t in dict.fromkeys(with_person)  # a daily dataset's files share one table
    )
    run(
        con,
        f"""INSERT INTO vault.link SELECT DISTINCT * FROM ({union}) new
            WHERE NOT EXISTS (SELECT 1 FROM vault.link v WHERE v.person_pseudonym = new.person_pseudonym)""",
    )


def _replace_partition(
    con, unit: Unit, delivery: str, results: list[FileResult], loaded_at: datetime, folder: str
) -> None:
    run(con, "BEGIN TRANSACTION")
    try:
        for table in [d.name for d in unit.datasets] + ["quarantine", "reconciliation"]:
            run(con, f"DELETE FROM {table} WHERE _delivery = $d", {"d": delivery})
        for staged, files in _by_table(results).items():
            _insert_rows(con, unit.dataset(files[0].dataset), staged, files, delivery, loaded_at)
        for r in results:
            _reconcile(con, r, delivery, loaded_at)
        gate.hold_unchecked(con, delivery)  # visible downstream only once its checks pass
        run(
            con,
            """INSERT INTO deliveries SELECT $d, $fp, (SELECT arg_max(fingerprint, _loaded_at)
               FROM deliveries WHERE _delivery = $d), $t""",
            {"d": delivery, "fp": folder, "t": loaded_at},
        )
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise


def _by_table(results: list[FileResult]) -> dict[str, list[FileResult]]:
    """The files whose rows a table holds: one file, a daily dataset's month, or a rejected file's line."""
    tables: dict[str, list[FileResult]] = {}
    for r in results:
        if r.status in ("loaded", "rejected"):
            tables.setdefault(r.staged, []).append(r)
    return tables


def _insert_rows(
    con, dataset: Dataset, staged: str, files: list[FileResult], delivery: str, loaded_at: datetime
) -> None:
    """A staged table's rows into the dataset or quarantine, in one pass however many files it holds."""
    if files[0].status == "rejected":
        [r] = files
        run(
            con,
            f"""INSERT INTO quarantine SELECT '{r.dataset}', $d, $f, line, $rule, NULL, NULL, $t FROM {staged}""",
            {"f": r.source_file, "d": delivery, "t": loaded_at, "rule": r.reason.split(":")[0]},
        )
        return
    exclude = f"{BORDER_ONLY}{_link_exclude(dataset)}"
    if files[0].part is None:  # one file
        [r] = files
        source, names = "$files[1]", [r.source_file]
    else:  # a month of daily files: each row's file by the index the table keeps
        source, names = f"$files[{FILE} + 1]", [None] * (1 + max(f.part for f in files))
        for f in files:
            names[f.part] = f.source_file
        exclude += f", {FILE}"
    lineage = {"files": names, "d": delivery, "t": loaded_at}
    run(
        con,
        f"INSERT INTO {dataset.name} SELECT * EXCLUDE ({exclude}), {source}, $d, $t FROM {staged} WHERE _rule IS NULL",
        lineage,
    )
    run(
        con,
        f"""INSERT INTO quarantine SELECT '{dataset.name}', $d, {source}, _source_line, _rule, _column,
                _raw_values, $t FROM {staged} WHERE _rule IS NOT NULL""",
        lineage,
    )


def _reconcile(con, r: FileResult, delivery: str, loaded_at: datetime) -> None:
    """The file's line in ``reconciliation``: rows in the file = loaded + quarantined, or why not."""
    run(
        con,
        "INSERT INTO reconciliation VALUES ($ds, $d, $f, $n, $ok, $q, $status, $reason, $t, $masked)",
        {"ds": r.dataset, "d": delivery, "f": r.source_file, "t": loaded_at}
        | {"n": r.rows_in_file, "ok": r.rows_loaded, "q": r.rows_quarantined}
        | {"status": r.status, "reason": r.reason, "masked": r.identifiers_masked},
    )


def _link_exclude(dataset: Dataset) -> str:
    return f", {LINK_TOKEN}" if dataset.person_column else ""


def _describe(r: FileResult) -> str:
    if r.status != "loaded":
        return f"{r.status} ({r.reason})"
    masked = f", {r.identifiers_masked} identifiers masked in free text" if r.identifiers_masked else ""
    return f"{r.rows_in_file} rows: {r.rows_loaded} loaded, {r.rows_quarantined} quarantined{masked}"
