"""Run a unit's committed suite on its deliveries with Great Expectations 1.x (pandas, ephemeral context).

GX's SQL datasource is broken over DuckDB (see the stack notes), and reading
every stored row into pandas for it cost as much as loading them; so DuckDB
counts, per delivery, the rows that break each rule (``frame.delivery_summary``)
and GX judges those counts, with the delivery's volume and dates, on one
summary row per delivery. GX's cost is almost all fixed per expectation and
run, so one run judges many deliveries and names each one that fails by
``_delivery``. Results say which expectation failed, for which delivery and how
many rows; never a row's value, and the quarantine table says which lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.quality import offline_docs
from pipelines.quality.contract import ALL_ROWS, LOADED_ROWS, PARTS, build_contract
from pipelines.units.spec import Unit

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
# Which deliveries' summary rows failed: their _delivery. The summary holds counts and date bounds only.
ATTRIBUTED = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": ["_delivery"],
    "return_unexpected_index_query": False,
}
log = logging.getLogger(__name__)
COUNTED_OF = {ALL_ROWS: "rows", LOADED_ROWS: "rows_loaded"}  # a row part's counts are of these rows


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict on one delivery's file: counts only, never values."""

    suite: str
    part: str  # all_rows | loaded_rows | delivery
    rule: str
    column: str | None
    expectation: str
    severity: str  # critical | warning
    success: bool
    unexpected: int | None
    rows: int | None
    observed: int | None = None  # row count, for the volume expectation
    counted: str | None = None  # the summary column judged

    def describe(self) -> str:
        where = f" {self.column}" if self.column else ""
        if self.observed is not None:
            return f"{self.suite}: {self.rule}{where} ({self.observed} rows)"
        count = f" ({self.unexpected} of {self.rows} rows)" if self.unexpected is not None else ""
        return f"{self.suite}: {self.rule}{where}{count}"


class Validator:
    """One GX ephemeral context with a unit's suites, reused for every delivery of a run.

    The suites are built from the unit's contract as it is now (``contract.build_contract``), so an
    edited or new contract is checked by its own rules; the committed JSON is their rendering for
    review, kept equal to it by a test.

    With ``docs_dir`` the context has a Data Docs site there; :meth:`build_docs`
    renders what this context validated (so give it only the latest delivery).
    """

    def __init__(self, unit: Unit, docs_dir: Path | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self.unit, self.docs_dir = unit.name, docs_dir
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if docs_dir is not None:
            self.context.add_data_docs_site(
                site_name=unit.name,
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        batches = self.context.data_sources.add_pandas(unit.name).add_dataframe_asset("delivery")
        batch = batches.add_batch_definition_whole_dataframe("file")
        self.suites = build_contract(unit)["suites"]
        # One GX suite per dataset, its parts told apart by meta: GX's cost is per run, not per row.
        self.definitions: dict[str, Any] = {
            name: _definition(
                gx, self.context, batch, name, [_in_part(e, part) for part in PARTS for e in spec[part]]
            )
            for name, spec in self.suites.items()
        }

    def validate(self, suite: str, summary: pd.DataFrame) -> dict[str, list[Outcome]]:
        """A dataset's suite on its deliveries' summary rows (``frame.delivery_summary``), per delivery.

        The deliveries are the GX run name, so a Data Docs page says which delivery it judged.
        """
        deliveries = list(summary["_delivery"])
        first, last = deliveries[0], deliveries[-1]
        run_name = f"delivery-{first}" if first == last else f"deliveries-{first}..{last}"
        fmt = ATTRIBUTED if len(deliveries) > 1 else RESULT_FORMAT
        judged = self._results(suite, summary, run_name, fmt)
        rows = summary.set_index("_delivery")
        return {d: [_judged(suite, r, d, rows.loc[d]) for r in judged] for d in deliveries}

    def _results(self, suite: str, batch: pd.DataFrame, run_name: str, result_format: dict) -> list:
        from great_expectations.core.run_identifier import RunIdentifier

        result = self.definitions[suite].run(
            batch_parameters={"dataframe": batch},
            result_format=result_format,
            run_id=RunIdentifier(run_name=run_name),
        )
        return result.results

    def build_docs(self) -> Path:
        assert self.docs_dir is not None, "this validator has no Data Docs site"
        self.context.build_data_docs(site_names=[self.unit])
        if not (self.docs_dir / "index.html").exists():  # GX builds nothing, silently, for an unknown site
            raise RuntimeError(f"GX wrote no Data Docs for {self.unit} into {self.docs_dir}")
        if missing := offline_docs.localise(self.docs_dir):
            log.warning("Data Docs of %s render without %s: run bin/setup", self.unit, ", ".join(missing))
        return self.docs_dir / "index.html"


def _definition(gx, context, batch, name: str, expectations: list[dict]):
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        # add_expectation, not add_expectation_configuration: the latter upserts by
        # domain, so two expectations on one column would collapse into one.
        config = ExpectationConfiguration(
            type=e["type"], kwargs=e["kwargs"], meta=e["meta"], severity=e["severity"]
        )
        suite.add_expectation(config.to_domain_obj())
    suite = context.suites.add(suite)
    return context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))


def _in_part(expectation: dict, part: str) -> dict:
    return expectation | {"meta": expectation["meta"] | {"part": part}}


def _judged(suite: str, r, delivery: str, summary: pd.Series) -> Outcome:
    """One delivery's verdict from a run over several deliveries' summary rows.

    GX lists the failing rows' ``_delivery``; an expectation that failed without a list (it raised,
    or judged a single delivery) failed for every delivery in the run. A row part's count is the
    delivery's own, of its rows (all rows, or the loaded ones).
    """
    listed = {i["_delivery"] for i in (r.result or {}).get("unexpected_index_list") or []}
    failed = delivery in listed or (not r.success and not listed)
    outcome = replace(_outcome(suite, r), success=not failed)
    if outcome.part in COUNTED_OF:
        counted = int(summary[outcome.counted])
        return replace(outcome, unexpected=counted, rows=int(summary[COUNTED_OF[outcome.part]]))
    observed = r.expectation_config.meta.get("observed")
    return replace(outcome, observed=int(summary[observed]) if observed else None)


def _outcome(suite: str, r) -> Outcome:
    config = r.expectation_config
    if r.exception_info and r.exception_info.get("raised_exception"):
        log.warning("%s: %s raised %s", suite, config.type, r.exception_info.get("exception_message"))
    return Outcome(
        suite=suite,
        part=config.meta["part"],
        rule=config.meta.get("rule", config.type),
        column=config.meta.get("column"),
        expectation=config.type,
        severity=str(getattr(config.severity, "value", config.severity)),
        success=bool(r.success),
        unexpected=None,
        rows=None,
        counted=config.kwargs.get("column"),
    )
