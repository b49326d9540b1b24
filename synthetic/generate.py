"""Generate a synthetic municipality: every unit's monthly deliveries plus the ground truth.

Public API
----------
- ``generate(out_dir, citizens=10_000, years=3, seed=1, defect_rate=0.002,
  end_month="2025-12", progress=True) -> GenerationSummary`` writes
  ``<out_dir>/landing/<unit>/<YYYY-MM>/<dataset file>`` for every unit in
  ``pipelines.units.UNITS`` and every month, and ``<out_dir>/ground_truth/``
  (``manifest.json``, ``defects.json``). ``landing/`` and ``ground_truth/``
  of an earlier generation in ``out_dir`` are replaced; if they exist but were
  not written by the generator, it refuses (FileExistsError) rather than
  delete someone else's files. Nothing else under ``out_dir`` is touched.
- ``all_personnummer(out_dir) -> set[str]`` scans the landing files and returns
  every personnummer string exactly as written (valid or broken, in every
  unit's style): the list a leak scan of the warehouse looks for. Ground truth
  never holds personnummer, so the landing files are the only source.
- ``python -m synthetic --out DIR [--citizens N] [--years Y] [--seed S]
  [--defect-rate R] [--end-month YYYY-MM]`` runs ``generate`` from the shell.

Same seed and arguments give byte-identical files (and the same mtimes).
Each part draws from its own random stream (``synthetic.seeding``), so the
data with defects is the clean data (defect_rate=0) plus the listed defects.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.ingest.months import Delivery
from pipelines.units import UNITS
from pipelines.units.spec import Dataset, Unit
from synthetic import care as care_mod
from synthetic import cases, contacts, defects, economy, feedback, links, personnel, social
from synthetic import school as school_mod
from synthetic.defects import LATE_DAYS, DeliveryDefects, RowDefect
from synthetic.ground_truth import Pattern, manifest, write_json
from synthetic.period import Period
from synthetic.population import Population, simulate_population
from synthetic.seeding import child_rng
from synthetic.write import delivery_path, encode, logical_columns, read_delivery, with_personnummer

GENERATOR = "knutpunkt-synthetic"  # marks ground_truth/manifest.json as ours (safe to replace)
BACKGROUND = [
    "Economic aid is more common in single-parent and single-adult households and in the districts "
    "Hamnen and Söder (less in Skogsby, Ängby, Norr).",
    "Home care and safety alarms become more common with age (about 7-8 % of people 75+ have home care).",
    "Year-9 merit value falls about 2 points per percentage point of spring-term absence.",
    "Contact-centre volume is seasonal (low in July and December); building permits peak in spring.",
    "About 9 % of pupils attend one of two independent schools; others attend their district's school.",
    "Building permits appear in the case hub with the same diarienummer and dates as in bygg_miljo.",
]
SIMULATION_STEPS = 7


@dataclass
class GenerationSummary:
    """What a generation wrote."""

    out_dir: Path
    parameters: dict[str, object]
    rows: dict[str, int] = field(default_factory=dict)  # 'unit.dataset' -> data rows written
    bytes: dict[str, int] = field(default_factory=dict)  # 'unit.dataset' -> bytes written
    files: int = 0
    defects: dict[str, int] = field(default_factory=dict)  # defect type -> count
    natural_duplicates_removed: int = 0  # should stay 0: the services do not produce duplicates
    seconds: float = 0.0

    def table(self) -> Table:
        table = Table(title=f"Synthetic municipality in {self.out_dir}")
        table.add_column("dataset")
        table.add_column("rows", justify="right")
        table.add_column("MB", justify="right")
        for name, rows in self.rows.items():
            table.add_row(name, f"{rows:,}", f"{self.bytes[name] / 1e6:.2f}")
        return table


def generate(
    out_dir: Path,
    citizens: int = 10_000,
    years: int = 3,
    seed: int = 1,
    defect_rate: float = 0.002,
    end_month: str = "2025-12",
    progress: bool = True,
) -> GenerationSummary:
    """Write a synthetic municipality's deliveries and ground truth under `out_dir` (see module doc)."""
    started = time.perf_counter()
    if citizens < 200:
        raise ValueError("citizens must be at least 200")
    if not 0 <= defect_rate <= 0.25:
        raise ValueError("defect_rate must be between 0 and 0.25")
    out_dir = Path(out_dir)
    period = Period.ending(end_month, years)
    parameters: dict[str, object] = {
        "seed": seed,
        "citizens": citizens,
        "years": years,
        "end_month": end_month,
        "defect_rate": defect_rate,
        "months": period.labels,
    }
    _clear_previous_output(out_dir)
    summary = GenerationSummary(out_dir=out_dir, parameters=parameters)

    with _progress(progress) as bar:
        task = bar.add_task("simulating", total=SIMULATION_STEPS)
        pop, datasets, patterns = _simulate(seed, citizens, period, lambda: bar.advance(task))
        plan = defects.plan_delivery_defects(child_rng(seed, "delivery_defects"), period.months, defect_rate)
        writer = _Writer(out_dir, pop, seed, defect_rate, plan, summary)
        task = bar.add_task("writing deliveries", total=len(UNITS) * period.months)
        for unit in UNITS.values():
            writer.write_unit(unit, datasets, lambda: bar.advance(task))

    write_json(
        out_dir / "ground_truth" / "defects.json", defects.report(writer.row_defects, plan, period.label)
    )
    write_json(
        out_dir / "ground_truth" / "manifest.json",
        {"generator": GENERATOR, **manifest(parameters, patterns, BACKGROUND)},
    )
    summary.defects = {d: 0 for d in defects.ROW_DEFECTS}
    for d in writer.row_defects:
        summary.defects[d.defect] += 1
    summary.defects["late_delivery"] = int(plan.late is not None)
    summary.defects["renamed_column"] = int(plan.renamed is not None)
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def _simulate(
    seed: int, citizens: int, period: Period, step: Callable[[], object]
) -> tuple[Population, dict[tuple[str, str], pl.DataFrame], list[Pattern]]:
    """Every unit's rows (logical form, keyed by unit and dataset) and the planted patterns."""
    pop = simulate_population(child_rng(seed, "population"), citizens, period)
    step()
    aid = social.economic_aid(child_rng(seed, "economic_aid"), pop)
    step()
    school = school_mod.school(child_rng(seed, "school"), pop, aid)
    investigations = social.child_investigations(child_rng(seed, "investigations"), pop, school.absence)
    step()
    care = care_mod.care(child_rng(seed, "care"), pop)
    step()
    kontakter = contacts.contact_centre(child_rng(seed, "contact_centre"), pop, care)
    inlamningar = contacts.e_services(child_rng(seed, "e_services"), pop, care)
    step()
    permits = cases.building_permits(child_rng(seed, "building_permits"), pop)
    events = cases.case_events(child_rng(seed, "case_events"), pop, permits)
    planted = links.plant_links(
        child_rng(seed, "links"), pop, care, aid.frame, permits.frame, kontakter, inlamningar
    )
    kontakter = contacts.with_planted_contacts(
        child_rng(seed, "links", "contacts"), pop, kontakter, planted.contacts
    )
    inlamningar = contacts.with_planted_submissions(
        child_rng(seed, "links", "submissions"), pop, care, inlamningar, planted.submissions
    )
    step()
    utfall, deviations = economy.outcomes(child_rng(seed, "economy"), pop)
    betyg, low_ratings = feedback.ratings(child_rng(seed, "feedback"), pop)
    nyckeltal, personnel_patterns = personnel.personnel(child_rng(seed, "personnel"), pop)
    step()
    datasets = {
        ("folkbokforing", "aviseringar"): pop.events,
        ("socialtjanst", "ekonomiskt_bistand"): aid.frame,
        ("socialtjanst", "barnutredningar"): investigations,
        ("skola", "inskrivning"): school.enrolment,
        ("skola", "franvaro"): school.absence,
        ("skola", "meritvarde"): school.merit,
        ("vard_omsorg", "hemtjanst"): care.home_care,
        ("vard_omsorg", "sarskilt_boende"): care.placements,
        ("vard_omsorg", "trygghetslarm"): care.alarms,
        ("bygg_miljo", "bygglov"): permits.frame,
        ("kontaktcenter", "kontakter"): kontakter,
        ("e_tjanster", "inlamningar"): inlamningar,
        ("arendehandelser", "statushandelser"): events,
        ("ekonomi", "utfall"): utfall,
        ("direkt_feedback", "betyg"): betyg,
        ("personal", "nyckeltal"): nyckeltal,
    }
    expected = {(u.name, d.name) for u in UNITS.values() for d in u.datasets}
    if set(datasets) != expected:
        raise RuntimeError(f"generator and unit specs disagree: {sorted(set(datasets) ^ expected)}")
    patterns = [
        *school_mod.patterns(school.absence, school.merit),
        *care_mod.patterns(pop, care),
        *social.patterns(school.absence, investigations, period.months),
        *contacts.patterns(pop, care, kontakter, inlamningar),
        *cases.patterns(pop, events, permits, aid.frame, care.alarm_m),
        *planted.patterns,
        links.CONFOUNDED,
        *deviations,
        *low_ratings,
        *personnel_patterns,
    ]
    return pop, datasets, patterns


@dataclass
class _Writer:
    """Writes each unit's monthly deliveries: personnummer style, defects, encoding, mtimes."""

    out_dir: Path
    pop: Population
    seed: int
    defect_rate: float
    plan: DeliveryDefects
    summary: GenerationSummary
    row_defects: list[RowDefect] = field(default_factory=list)

    def write_unit(
        self, unit: Unit, datasets: dict[tuple[str, str], pl.DataFrame], done: Callable[[], object]
    ) -> None:
        period, seed = self.pop.period, self.seed
        prepared = {
            d.name: with_personnummer(
                datasets[(unit.name, d.name)], unit, d, self.pop, child_rng(seed, "pnr", unit.name, d.name)
            )
            for d in unit.datasets
        }
        parts = {
            name: frame.partition_by("_month", as_dict=True, maintain_order=True)
            for name, frame in prepared.items()
        }
        mtime_rng = child_rng(seed, "mtimes", unit.name)
        for m in range(period.months):
            monthly = [d for d in unit.datasets if not d.daily]
            written = [
                self._write_file(
                    unit, dataset, m, parts[dataset.name].get((m,), prepared[dataset.name].clear())
                )
                for dataset in monthly
                if period.calendar_month(m) in dataset.delivered_in_months
            ]
            month_end = datetime.fromisoformat(f"{period.label(m + 1)}-01").replace(tzinfo=UTC)
            mtime = _delivery_mtime(month_end, self.plan.is_late(unit, m), int(mtime_rng.integers(0, 10**6)))
            for path in written:
                os.utime(path, (mtime, mtime))
            for dataset in unit.datasets:
                if dataset.daily:
                    month = parts[dataset.name].get((m,), prepared[dataset.name].clear())
                    self._write_days(unit, dataset, m, month, mtime_rng)
            done()

    def _write_days(
        self, unit: Unit, dataset: Dataset, m: int, part: pl.DataFrame, rng: np.random.Generator
    ) -> None:
        """A daily dataset: a file for every day of the month (only its header on a day without
        records), written the night after (its mtime)."""
        by_day = part.partition_by("_day", as_dict=True, maintain_order=True)
        for day in Delivery.parse(self.pop.period.label(m)).days_before(date.max):
            path = self._write_file(unit, dataset, m, by_day.get((day,), part.clear()), day)
            night = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, hours=1)
            mtime = (night + timedelta(seconds=int(rng.integers(0, 3600)))).timestamp()
            os.utime(path, (mtime, mtime))

    def _write_file(
        self, unit: Unit, dataset: Dataset, m: int, part: pl.DataFrame, day: date | None = None
    ) -> Path:
        label = self.pop.period.label(m)
        frame = logical_columns(part, dataset)
        unique = frame.unique(maintain_order=True)
        self.summary.natural_duplicates_removed += frame.height - unique.height
        renames = self.plan.renames(unit, dataset, m)
        # The renamed delivery gets no row defects (see synthetic.defects), nor does a daily dataset:
        # defects.json names a row by month and line, and a daily month has a file per day.
        if renames is None and not dataset.daily:
            rng = child_rng(self.seed, "defects", unit.name, dataset.name, m)
            unique, found = defects.inject(unique, unit, dataset, label, self.defect_rate, rng)
            self.row_defects.extend(found)
        path = delivery_path(self.out_dir, unit, label, dataset, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encode(unique, unit, dataset, renames)
        path.write_bytes(data)
        key = f"{unit.name}.{dataset.name}"
        self.summary.rows[key] = self.summary.rows.get(key, 0) + unique.height
        self.summary.bytes[key] = self.summary.bytes.get(key, 0) + len(data)
        self.summary.files += 1
        return path


def _clear_previous_output(out_dir: Path) -> None:
    """Remove landing/ and ground_truth/ of an earlier generation; refuse to delete anything else."""
    present = [out_dir / sub for sub in ("landing", "ground_truth") if (out_dir / sub).exists()]
    if not any(any(p.iterdir()) for p in present):
        return
    marker = out_dir / "ground_truth" / "manifest.json"
    try:
        ours = json.loads(marker.read_text(encoding="utf-8")).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise FileExistsError(
            f"{out_dir} holds landing/ or ground_truth/ not written by this generator; use an empty directory"
        )
    for path in present:
        shutil.rmtree(path)


def _delivery_mtime(month_end: datetime, late: bool, minutes: int) -> float:
    """Files arrive 2-5 days after the month (or about 40 days after, when late)."""
    delay = timedelta(days=LATE_DAYS) if late else timedelta(days=2 + minutes // 1440 % 4)
    return (month_end + delay + timedelta(hours=6, minutes=minutes % 720)).timestamp()


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    ) as bar:
        yield bar


def all_personnummer(out_dir: Path) -> set[str]:
    """Every personnummer string in the landing files, exactly as written (valid or not)."""
    found: set[str] = set()
    for unit in UNITS.values():
        sources = {c.source for d in unit.datasets for c in d.columns}
        for dataset in unit.datasets:
            column = dataset.person_column
            if column is None:
                continue
            months = sorted(p for p in (Path(out_dir) / "landing" / unit.name).glob("*") if p.is_dir())
            for path in [f for month in months for f in dataset.files(month, unit.format) if f.exists()]:
                frame = read_delivery(path, unit)
                # The spec's column, or (renamed-column defect) whatever the spec does not know.
                if column.source in frame.columns:
                    names = [column.source]
                else:
                    names = [c for c in frame.columns if c not in sources]
                for name in names:
                    found.update(v for v in frame[name].cast(pl.String).to_list() if v)
    return found
