"""Load one unit's monthly delivery into its zone: every row loaded or quarantined, atomically.

A daily dataset's delivery is its month's folder with a file per day; the month is loaded whole.

A delivery (``landing/<unit>/<YYYY-MM>/``) replaces its partition in a DuckDB
transaction (with the other months of its batch, in a backfill), so a rerun gives
the same tables and a killed load leaves the previous state. Per file,
``reconciliation`` records rows in the file = rows loaded + rows quarantined; a file
that cannot be read at all is quarantined whole with its reason, and the unit's other
files and months are unaffected.
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
from pipelines.ingest.transform import BORDER_ONLY, FILE, IDENTIFIERS, LINK_TOKEN, REF_YEAR, border_query
from pipelines.quality import gate
from pipelines.units.spec import Dataset, FileFormat, Unit
from warehouse.layout import Warehouse, connect, of_deliveries, run, transaction, used

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
# Landing bytes staged through one border query: a few months of the largest unit at 1,000,000
# citizens, a whole backfill of a small unit (bench: 128 MB saved 5 % for 0.9 GB more per worker).
BATCH_BYTES = 64 * 2**20
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
    part: int | None = None  # the file's index in ``staged``, which holds the batch's files (``FILE``)


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

    A backfill is loaded in batches of consecutive months, up to ``BATCH_BYTES`` of landing files
    (:func:`batches`): each dataset's files of a batch go through one border query, and the batch's
    deliveries replace their partitions in one transaction, so a killed load leaves each of them as it
    was. Planning the border query, committing and checkpointing once per small month cost more than
    loading its rows. A backfill shares one zone connection (and the attached vault).
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
        _ensure_tables(con, unit, keyed)
        with _vault(con, unit, warehouse.vault(unit.name)):
            for batch in batches(landing / unit.name, deliveries):
                stored = _load(con, unit, batch, landing, keyed)
                for delivery, results in stored.items():
                    _log(unit, delivery, results)
                    yield delivery, results


def batches(folder: Path, deliveries: list[str], budget: int = BATCH_BYTES) -> Iterator[list[str]]:
    """Consecutive deliveries whose files add up to at most ``budget`` bytes (a larger one alone)."""
    batch: list[str] = []
    size = 0
    for delivery in deliveries:
        files = sum(p.stat().st_size for p in (folder / delivery).iterdir() if p.is_file())
        if batch and size + files > budget:
            yield batch
            batch, size = [], 0
        batch.append(delivery)
        size += files
    if batch:
        yield batch


def _load(con, unit: Unit, batch: list[str], landing: Path, params: dict) -> dict[str, list[FileResult]]:
    loaded_at = datetime.now()
    # Each folder's fingerprint before reading: a file that changes now makes the delivery load again.
    folders = {d: fingerprint(landing / unit.name / d) for d in batch}
    results: dict[str, list[FileResult]] = {d: [] for d in batch}
    for ds in unit.datasets:
        months = [d for d in batch if Delivery.parse(d).month in ds.delivered_in_months]
        for delivery, staged in _stage(con, unit, ds, months, landing, params).items():
            results[delivery] += staged
    _write_vault(con, unit, [r for rs in results.values() for r in rs])
    _replace_partitions(con, unit, results, loaded_at, folders)
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


def _stage(
    con, unit: Unit, dataset: Dataset, deliveries: list[str], landing: Path, params: dict
) -> dict[str, list[FileResult]]:
    """Every file of the dataset in the deliveries through one border query into ``staged_<dataset>``:
    each month's one file, or each day's file of a daily dataset with the days that have passed without
    a file and the files named for no day. Each file is counted and reconciled on its own (``FILE``)."""
    table = f"staged_{dataset.name}"
    files, entries = _files(unit, dataset, deliveries, landing)
    read = [
        _read(con, dataset, unit, path, landing, f"{table}_rejected_{i}") for i, (_, path) in enumerate(files)
    ]
    frames = [
        raw.with_columns(
            pl.lit(i, pl.Int64).alias(FILE),
            pl.lit(Delivery.parse(files[i][0]).year, pl.Int64).alias(REF_YEAR),
        )
        for i, raw in enumerate(read)
        if not _rejected(raw)
    ]
    counts = _border(con, dataset, unit.format, frames, table, params) if frames else {}

    def result(i: int) -> FileResult:
        if _rejected(read[i]):
            return read[i]
        source = _source(files[i][1], landing)
        return _loaded(dataset, source, read[i].height, *counts.get(i, (0, 0)), table, part=i)

    return {d: [e if isinstance(e, FileResult) else result(e) for e in found] for d, found in entries.items()}


def _files(
    unit: Unit, dataset: Dataset, deliveries: list[str], landing: Path
) -> tuple[list[tuple[str, Path]], dict[str, list[int | FileResult]]]:
    """The files there are to read, as (delivery, path); and per delivery, in order, each expected
    file: its index among them, or its result if it is not there to read (missing, misnamed)."""
    files: list[tuple[str, Path]] = []
    entries: dict[str, list[int | FileResult]] = {d: [] for d in deliveries}
    for d in deliveries:
        folder = landing / unit.name / d
        paths = (
            dataset.files(folder, unit.format) if dataset.daily else [folder / dataset.file_name(unit.format)]
        )
        for path in paths:
            if path.exists():
                entries[d].append(len(files))
                files.append((d, path))
            else:
                entries[d].append(
                    FileResult(dataset.name, _source(path, landing), 0, 0, 0, "missing", "file not delivered")
                )
        if dataset.daily:
            entries[d] += _unaccounted(unit, dataset, d, landing, paths)
    return files, entries


def _border(
    con, dataset: Dataset, fmt: FileFormat, frames: list[pl.DataFrame], table: str, params: dict
) -> dict[int, tuple[int, int]]:
    """The border query over the files' rows into the temp table ``table``; per file, the rows it
    quarantined and the identifiers it masked."""
    query = border_query(dataset, fmt)
    con.register("raw", pl.concat(frames))
    run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS {query.sql}", used(query.sql, params))
    con.unregister("raw")
    counted = f"""SELECT {FILE}, count(*) FILTER (_rule IS NOT NULL), coalesce(sum({IDENTIFIERS}), 0)
                  FROM {table} GROUP BY 1"""
    return {i: (quarantined, masked) for i, quarantined, masked in run(con, counted)}


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
    numbers = {LINE: pl.Int64, FILE: pl.Int64, REF_YEAR: pl.Int64}
    empty = pl.DataFrame(schema={c.source: pl.String for c in dataset.columns} | numbers)
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


def _replace_partitions(
    con, unit: Unit, results: dict[str, list[FileResult]], loaded_at: datetime, folders: dict[str, str]
) -> None:
    """The batch's deliveries replace their partitions, all in one transaction."""
    theirs, bounds = of_deliveries(results)
    with transaction(con):
        for table in [d.name for d in unit.datasets] + ["quarantine", "reconciliation"]:
            run(con, f"DELETE FROM {table} WHERE {theirs}", bounds)
        staged: dict[str, list[tuple[str, FileResult]]] = {}
        for delivery, files in results.items():
            for r in files:
                if r.status == "rejected":
                    _insert_rejected(con, r, delivery, loaded_at)
                elif r.status == "loaded":
                    staged.setdefault(r.staged, []).append((delivery, r))
        for table, files in staged.items():
            _insert_rows(con, unit.dataset(files[0][1].dataset), table, files, loaded_at)
        _reconcile(con, results, loaded_at)
        for delivery in results:
            gate.hold_unchecked(con, delivery)  # visible downstream only once its checks pass
            run(
                con,
                """INSERT INTO deliveries SELECT $d, $fp, (SELECT arg_max(fingerprint, _loaded_at)
                   FROM deliveries WHERE _delivery = $d), $t""",
                {"d": delivery, "fp": folders[delivery], "t": loaded_at},
            )


def _insert_rejected(con, r: FileResult, delivery: str, loaded_at: datetime) -> None:
    """A file rejected whole: quarantined at the line it failed on, which its own table holds."""
    run(
        con,
        f"""INSERT INTO quarantine SELECT '{r.dataset}', $d, $f, line, $rule, NULL, NULL, $t FROM {r.staged}""",
        {"f": r.source_file, "d": delivery, "t": loaded_at, "rule": r.reason.split(":")[0]},
    )


def _insert_rows(
    con, dataset: Dataset, staged: str, files: list[tuple[str, FileResult]], loaded_at: datetime
) -> None:
    """A staged table's rows into the dataset or quarantine in one pass, each row's file and delivery
    found by the file's index (``FILE``)."""
    names: list[str | None] = [None] * (1 + max(f.part for _, f in files))
    months = list(names)
    for delivery, f in files:
        names[f.part], months[f.part] = f.source_file, delivery
    lineage = {"files": names, "months": months, "t": loaded_at}
    source, delivery = f"$files[{FILE} + 1]", f"$months[{FILE} + 1]"
    run(
        con,
        f"""INSERT INTO {dataset.name} SELECT * EXCLUDE ({BORDER_ONLY}{_link_exclude(dataset)}),
                {source}, {delivery}, $t FROM {staged} WHERE _rule IS NULL""",
        lineage,
    )
    run(
        con,
        f"""INSERT INTO quarantine SELECT '{dataset.name}', {delivery}, {source}, _source_line, _rule, _column,
                _raw_values, $t FROM {staged} WHERE _rule IS NOT NULL""",
        lineage,
    )


def _reconcile(con, results: dict[str, list[FileResult]], loaded_at: datetime) -> None:
    """Each file's line in ``reconciliation``: rows in the file = loaded + quarantined, or why not."""
    files = [(d, r) for d, rs in results.items() for r in rs]
    lines = pl.DataFrame(
        {
            "dataset": [r.dataset for _, r in files],
            "delivery": [d for d, _ in files],
            "source_file": [r.source_file for _, r in files],
            "rows_in_file": [r.rows_in_file for _, r in files],
            "rows_loaded": [r.rows_loaded for _, r in files],
            "rows_quarantined": [r.rows_quarantined for _, r in files],
            "status": [r.status for _, r in files],
            "reason": [r.reason for _, r in files],
            "identifiers_masked": [r.identifiers_masked for _, r in files],
        },
        schema_overrides={"rows_in_file": pl.Int64, "rows_quarantined": pl.Int64, "reason": pl.String},
    )
    con.register("reconciled", lines)
    run(
        con,
        """INSERT INTO reconciliation SELECT dataset, delivery, source_file, rows_in_file, rows_loaded,
               rows_quarantined, status, reason, $t, identifiers_masked FROM reconciled""",
        {"t": loaded_at},
    )
    con.unregister("reconciled")


def _link_exclude(dataset: Dataset) -> str:
    return f", {LINK_TOKEN}" if dataset.person_column else ""


def _describe(r: FileResult) -> str:
    if r.status != "loaded":
        return f"{r.status} ({r.reason})"
    masked = f", {r.identifiers_masked} identifiers masked in free text" if r.identifiers_masked else ""
    return f"{r.rows_in_file} rows: {r.rows_loaded} loaded, {r.rows_quarantined} quarantined{masked}"
