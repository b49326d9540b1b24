"""What a load would do with the sample under the draft contract, by the real border on a throwaway home.

Nothing is re-implemented: the draft is read by :mod:`pipelines.units.load` from a temporary contracts
folder (so a draft the loader refuses fails here, naming the key), the sample is placed in a temporary
landing as a delivery of the current month, and :func:`pipelines.ingest.delivery.load_delivery` loads it
into a temporary unit zone under a throwaway key. The counts and the quarantine's rules are read back from
that zone; the folder is deleted afterwards, pseudonyms included.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from pipelines.border.keys import load_keyring
from pipelines.ingest.delivery import FileResult, load_delivery
from pipelines.settings import Paths
from pipelines.units.load import INDEX, read_units
from warehouse.layout import Warehouse, connect, run

SHOWN_LINES = 5  # source lines named per rule; the rest are counted


@dataclass(frozen=True)
class Quarantined:
    rule: str
    column: str | None
    rows: int
    first_lines: tuple[int, ...]


@dataclass(frozen=True)
class DryRun:
    result: FileResult
    quarantined: tuple[Quarantined, ...]

    def describe(self) -> list[str]:
        """One line for the file, then one per rule (and column) with its first source lines."""
        r = self.result
        if r.status != "loaded":
            return [f"dry run: the whole file would be {r.status}: {r.reason} ({r.rows_in_file} rows)"]
        lines = [
            f"dry run: {r.rows_in_file} rows: {r.rows_loaded} would load, {r.rows_quarantined} would be "
            f"quarantined, {r.identifiers_masked} personnummer masked in free text"
        ]
        for q in self.quarantined:
            more = ", …" if q.rows > len(q.first_lines) else ""
            where = f" ({q.column})" if q.column else ""
            lines.append(
                f"  {q.rule}{where}: {q.rows} rows, lines {', '.join(map(str, q.first_lines))}{more}"
            )
        return lines


def dry_run(sample: Path, draft: str, unit: str, dataset: str) -> DryRun:
    """Load ``sample`` as a delivery of this month under the contract text ``draft``."""
    month = date.today().strftime("%Y-%m")
    with tempfile.TemporaryDirectory(prefix="knutpunkt-onboard-") as tmp:
        root = Path(tmp)
        contracts = root / "contracts"
        contracts.mkdir()
        (contracts / f"{unit}.{dataset}.yaml").write_text(draft, encoding="utf-8")
        (contracts / INDEX).write_text(yaml.safe_dump({"units": {unit: [dataset]}}), encoding="utf-8")
        spec = read_units(contracts)[unit]
        home = Paths(root / "home")
        target = home.delivery_dir(unit, month) / spec.dataset(dataset).file_name(spec.format)
        target.parent.mkdir(parents=True)
        shutil.copyfile(sample, target)
        warehouse = Warehouse(home.warehouse)
        [result] = load_delivery(
            spec, month, home.landing, warehouse, load_keyring(hex_key=secrets.token_hex(32))
        )
        with connect(warehouse.unit_zone(unit), read_only=True) as con:
            rules = run(
                con,
                f"""SELECT rule, "column", count(*), list(_source_line ORDER BY _source_line)[1:{SHOWN_LINES}]
                    FROM quarantine GROUP BY rule, "column" ORDER BY count(*) DESC, rule""",
            )
    return DryRun(
        result, tuple(Quarantined(rule, column, n, tuple(lines)) for rule, column, n, lines in rules)
    )
