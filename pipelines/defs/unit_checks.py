"""The Dagster asset checks of a unit zone, evaluated per delivery partition.

They run inside the unit's load step, right after each delivery is stored
(the zone's DuckDB file admits one writer, and the step already holds it), and
are reported per partition, so a range run over many months still shows a
verdict for each month in the UI.

- ``reconciliation`` (holds the delivery on ERROR): every expected file arrived,
  with records (a header-only file is an empty delivery, unless the dataset's
  spec says ``may_be_empty``), and rows in the file = rows loaded + rows
  quarantined, also as counted in the tables; where the contract names a
  manifest, the file's record count and sums agree with it (``quality/control.py``).
- ``expectations`` (holds the delivery on ERROR): the unit's GX suite. A failed
  ``critical`` expectation is an ERROR; a failed ``warning`` is a WARN: shown,
  nothing held.

Holding is the gate's job (``pipelines.quality.gate``), per delivery, not
Dagster's blocking, which would fail the whole step and skip the unit's other
checks: a held delivery is a check outcome, and the run succeeds.
- ``freshness``: the delivery arrived by its due date (WARN when late).

And one unpartitioned check per unit, ``delivery_overdue``: the next monthly
delivery is not yet in landing although it is due. It runs on a daily
schedule (and after every load), so a feed that stops shows as failed even
though no run of the unit happens.
"""

from __future__ import annotations

import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.defs.resources import Platform
from pipelines.quality import docs, freshness, gate
from pipelines.quality.control import control_problems
from pipelines.quality.frame import DeliveryFile, delivery_files, delivery_summary, parameters
from pipelines.quality.gate import EXPECTATIONS, HOLDING_CHECKS, RECONCILIATION
from pipelines.quality.records import count_records
from pipelines.quality.validate import Outcome, Validator
from pipelines.settings import Paths
from pipelines.units import UNITS, Unit
from warehouse.layout import Warehouse, connect, of_deliveries, run

FRESHNESS = "freshness"
ALL = frozenset({RECONCILIATION, EXPECTATIONS, FRESHNESS})
OVERDUE = "delivery_overdue"
LISTED = 20  # failures listed in metadata; the rest are counted
EMPTY_DELIVERY = "empty delivery: the file holds no records, only its header"


def check_specs(
    unit: Unit, asset: dg.AssetKey, partitions: dg.PartitionsDefinition
) -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():  # partitioned checks are a Dagster preview; we rely on them knowingly
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _specs(unit, asset, partitions)


def _specs(unit: Unit, asset: dg.AssetKey, partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            RECONCILIATION,
            asset=asset,
            partitions_def=partitions,
            description="Every expected file arrived, with records (an empty file only where its dataset "
            "may be empty); rows in file = rows loaded + rows quarantined.",
        ),
        dg.AssetCheckSpec(
            EXPECTATIONS,
            asset=asset,
            partitions_def=partitions,
            description=f"Great Expectations suite pipelines/units/expectations/{unit.name}.json: "
            "critical failures are ERROR (block downstream), warnings are WARN.",
        ),
        dg.AssetCheckSpec(
            FRESHNESS,
            asset=asset,
            partitions_def=partitions,
            description=f"The {freshness.CADENCE} delivery arrived at most {freshness.GRACE_DAYS} days "
            "after its month ended.",
        ),
    ]


def check_deliveries(
    unit: Unit, deliveries: list[str], paths: Paths, warehouse: Warehouse, selected: set[str] = ALL
) -> list[dg.AssetCheckEvaluation]:
    """Check stored deliveries and record each one's verdict: released, or held with the reason.

    The latest delivery is validated on its own, in a GX context with the unit's Data Docs site,
    so the unit's page shows that validation only; the earlier ones are validated together.
    """
    *earlier, latest = deliveries
    found = {}
    landing = paths.landing
    with connect(warehouse.unit_zone(unit.name)) as con:
        if earlier:
            found |= evaluate(unit, earlier, con, landing, Validator(unit), selected)
        site = docs.reset_site(paths.home, unit.name)
        with_docs = Validator(unit, site)
        found |= evaluate(unit, [latest], con, landing, with_docs, selected)
        for delivery, evaluations in found.items():
            failed = {e.check_name: e.description or e.check_name for e in holding_errors(evaluations)}
            gate.record_verdict(con, delivery, {e.check_name for e in evaluations}, failed)
    if EXPECTATIONS in selected:
        with_docs.build_docs()
    return [e for d in deliveries for e in found[d]]


def holding_errors(evaluations: list[dg.AssetCheckEvaluation]) -> list[dg.AssetCheckEvaluation]:
    return [
        e
        for e in evaluations
        if not e.passed and e.check_name in HOLDING_CHECKS and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """A run's failed holding checks, one line each: ``unit month: check (why)``."""
    return [
        f"{e.asset_key.path[-1]} {e.partition}: {e.check_name} ({e.description})"
        for e in holding_errors(result.get_asset_check_evaluations())
    ]


def evaluate(
    unit: Unit,
    deliveries: list[str],
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    validator: Validator,
    selected: set[str],
) -> dict[str, list[dg.AssetCheckEvaluation]]:
    """The selected checks' verdicts on stored deliveries, per delivery."""
    asset = dg.AssetKey(["units", unit.name])
    files = {d: delivery_files(con, d) for d in deliveries}
    outcomes = _outcomes(unit, con, validator, files) if EXPECTATIONS in selected else {}
    stored = _stored(con, unit, deliveries) if RECONCILIATION in selected else {}
    found = {}
    for d in deliveries:
        found[d] = []
        if RECONCILIATION in selected:
            found[d].append(_reconciliation(unit, asset, d, files[d], landing, stored))
        if EXPECTATIONS in selected:
            found[d].append(_expectations(asset, d, con, outcomes[d], files[d]))
        if FRESHNESS in selected:
            found[d].append(_freshness(asset, freshness.arrival(landing / unit.name / d)))
    return found


def _outcomes(
    unit: Unit, con: duckdb.DuckDBPyConnection, validator: Validator, files: dict[str, list[DeliveryFile]]
) -> dict[str, list[Outcome]]:
    """Each delivery's GX outcomes on its delivered dataset files: one GX run per dataset."""
    out: dict[str, list[Outcome]] = {d: [] for d in files}
    for ds in unit.datasets:
        suite = f"{unit.name}.{ds.name}"
        delivered = [
            d for d, fs in files.items() if any(f.dataset == ds.name and f.status != "missing" for f in fs)
        ]
        if not delivered:
            continue
        params = parameters(con, ds, delivered)
        summary = delivery_summary(con, ds, validator.suites[suite], params)
        for d, found in validator.validate(suite, summary).items():
            out[d] += found
    return out


def _stored(con, unit: Unit, deliveries: list[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """Rows the tables hold per (delivery, file): loaded, quarantined. Counted apart from the loader's
    own figures in ``reconciliation``, which they must equal."""
    theirs, bounds = of_deliveries(deliveries)
    counts: dict[tuple[str, str], list[int]] = {}
    tables = [(ds.name, "count(*), 0") for ds in unit.datasets] + [("quarantine", "0, count(*)")]
    for table, counted in tables:
        query = f"SELECT _delivery, _source_file, {counted} FROM {table} WHERE {theirs} GROUP BY ALL"
        for delivery, source_file, loaded, quarantined in run(con, query, bounds):
            row = counts.setdefault((delivery, source_file), [0, 0])
            row[0] += loaded
            row[1] += quarantined
    return {k: (loaded, quarantined) for k, (loaded, quarantined) in counts.items()}


def _reconciliation(
    unit: Unit,
    asset: dg.AssetKey,
    delivery: str,
    files: list[DeliveryFile],
    landing: Path,
    stored: dict[tuple[str, str], tuple[int, int]],
) -> dg.AssetCheckEvaluation:
    problems = []
    for f in files:
        if f.status == "missing":
            problems.append(f"{f.source_file}: not delivered")
            continue
        if f.status == "misnamed":
            problems.append(f"{f.source_file}: {f.reason}")
            continue
        if f.status == "rejected":
            continue  # quarantined whole: reported by the expectations check (file_readable)
        if f.rows_in_file == 0 and not unit.dataset(f.dataset).may_be_empty:
            problems.append(f"{f.source_file}: {EMPTY_DELIVERY}")
        if (records := count_records(landing / f.source_file, unit.format)) != f.rows_in_file:
            problems.append(
                f"{f.source_file}: {records} records by an independent count, the loader read {f.rows_in_file}"
            )
        problems += control_problems(landing / f.source_file, unit.format, unit.dataset(f.dataset), records)
        if f.rows_in_file != (f.rows_loaded or 0) + (f.rows_quarantined or 0):
            problems.append(
                f"{f.source_file}: {f.rows_in_file} rows in file, "
                f"{f.rows_loaded} loaded + {f.rows_quarantined} quarantined"
            )
        counted = stored.get((delivery, f.source_file), (0, 0))
        if counted != (f.rows_loaded, f.rows_quarantined):
            problems.append(
                f"{f.source_file}: tables hold {counted[0]} loaded + {counted[1]} quarantined, "
                f"reconciliation says {f.rows_loaded} + {f.rows_quarantined}"
            )
    table = "\n".join(
        f"| {f.source_file} | {f.status} | {_n(f.rows_in_file)} | {_n(f.rows_loaded)} | "
        f"{_n(f.rows_quarantined)} | {f.reason or ''} |"
        for f in files
    )
    return dg.AssetCheckEvaluation(
        asset_key=asset,
        check_name=RECONCILIATION,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        partition=delivery,
        description="; ".join(problems) or None,
        metadata={
            "files": len(files),
            "rows_in_files": sum(f.rows_in_file or 0 for f in files),
            "rows_loaded": sum(f.rows_loaded or 0 for f in files),
            "rows_quarantined": sum(f.rows_quarantined or 0 for f in files),
            "per_file": dg.MetadataValue.md(
                "| file | status | rows in file | loaded | quarantined | reason |\n|---|---|---|---|---|---|\n"
                + table
            ),
        },
    )


def _expectations(
    asset: dg.AssetKey, delivery: str, con, outcomes: list[Outcome], files: list[DeliveryFile]
) -> dg.AssetCheckEvaluation:
    critical = [o for o in outcomes if not o.success and o.severity == "critical"]
    warning = [o for o in outcomes if not o.success and o.severity == "warning"]
    quarantined = Counter(
        dict(
            run(
                con,
                """SELECT rule || ':' || coalesce("column", '*'), count(*) FROM quarantine
                   WHERE _delivery = $d GROUP BY 1 ORDER BY 1""",
                {"d": delivery},
            )
        )
    )
    failed = critical + warning
    rejected = [f"{f.source_file} rejected: {f.reason}" for f in files if f.status == "rejected"]
    listed = "\n".join(f"- **{o.severity}** {o.describe()}" for o in failed[:LISTED])
    if len(failed) > LISTED:
        listed += f"\n- ... and {len(failed) - LISTED} more"
    return dg.AssetCheckEvaluation(
        asset_key=asset,
        check_name=EXPECTATIONS,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
        partition=delivery,
        description="; ".join(rejected + [o.describe() for o in failed[:3]]) or None,
        metadata={
            "expectations": len(outcomes),
            "failed_critical": len(critical),
            "failed_warning": len(warning),
            "failures": dg.MetadataValue.md(listed or "none"),
            "quarantined_by_rule": dg.MetadataValue.json(dict(quarantined)),
        },
    )


def _freshness(asset: dg.AssetKey, a: freshness.Arrival) -> dg.AssetCheckEvaluation:
    arrived = a.arrived.isoformat(timespec="minutes") if a.arrived else "no files"
    return dg.AssetCheckEvaluation(
        asset_key=asset,
        check_name=FRESHNESS,
        passed=a.on_time,
        severity=dg.AssetCheckSeverity.WARN,
        partition=a.delivery,
        description=None
        if a.on_time
        else f"delivery {a.delivery} arrived {a.days_late:.0f} days after it was due",
        metadata={
            "cadence": freshness.CADENCE,
            "due": a.due.isoformat(timespec="minutes"),
            "arrived": arrived,
            "days_late": round(a.days_late, 1),
        },
    )


def _n(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def build_overdue_check(unit: Unit) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["units", unit.name]),
        name=OVERDUE,
        description=f"The next {freshness.CADENCE} delivery of {unit.title} is not overdue "
        f"(due {freshness.GRACE_DAYS} days after its month ends).",
    )
    def _overdue(platform: Platform) -> dg.AssetCheckResult:
        now = datetime.now(UTC)
        month, due = freshness.overdue(platform.paths.landing / unit.name, now)
        if month is None:
            return dg.AssetCheckResult(
                passed=True, metadata={"checked_at": now.isoformat(timespec="minutes")}
            )
        late = (now - due).days
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"delivery {month} is {late} days overdue (due {due:%Y-%m-%d})",
            metadata={
                "overdue_delivery": month,
                "due": due.isoformat(timespec="minutes"),
                "days_overdue": late,
            },
        )

    return _overdue


OVERDUE_CHECKS = [build_overdue_check(u) for u in UNITS.values()]
FRESHNESS_JOB = dg.define_asset_job("delivery_freshness", selection=dg.AssetSelection.checks(*OVERDUE_CHECKS))
FRESHNESS_SCHEDULE = dg.ScheduleDefinition(
    job=FRESHNESS_JOB, cron_schedule="0 7 * * *", default_status=dg.DefaultScheduleStatus.RUNNING
)
