"""Run a unit's committed suite on one delivery with Great Expectations 1.x (pandas, ephemeral context).

GX's SQL datasource is broken over DuckDB (see the stack notes), so each
dataset file's frame is validated in pandas, one batch per delivery. Results
use a bounded ``result_format`` with no unexpected values at all, so neither
results, Data Docs nor Dagster metadata can carry a data value: they say which
expectation failed and how many rows, and the quarantine table says which lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.quality.contract import ALL_ROWS, LOADED_ROWS, load_contract

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict on one file: counts only, never values."""

    suite: str
    rule: str
    column: str | None
    expectation: str
    severity: str  # critical | warning
    success: bool
    unexpected: int | None
    rows: int | None
    observed: int | None = None  # row count, for the volume expectation

    def describe(self) -> str:
        where = f" {self.column}" if self.column else ""
        if self.observed is not None:
            return f"{self.suite}: {self.rule}{where} ({self.observed} rows)"
        count = f" ({self.unexpected} of {self.rows} rows)" if self.unexpected is not None else ""
        return f"{self.suite}: {self.rule}{where}{count}"


@dataclass
class Validation:
    """Every outcome of one delivery, across its dataset files."""

    outcomes: list[Outcome] = field(default_factory=list)

    def failed(self, severity: str) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == severity]


class Validator:
    """One GX ephemeral context with a unit's suites, reused for every delivery of a run.

    With ``docs_dir`` the context has a Data Docs site there; :meth:`build_docs`
    renders what this context validated (so give it only the latest delivery).
    """

    def __init__(self, unit: str, docs_dir: Path | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self.unit, self.docs_dir = unit, docs_dir
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if docs_dir is not None:
            self.context.add_data_docs_site(
                site_name=unit,
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        batches = self.context.data_sources.add_pandas(unit).add_dataframe_asset("delivery")
        batch = batches.add_batch_definition_whole_dataframe("file")
        self.definitions: dict[tuple[str, str], Any] = {}
        for name, spec in load_contract(unit)["suites"].items():
            for part in (ALL_ROWS, LOADED_ROWS):
                suite = gx.ExpectationSuite(name=f"{name}.{part}")
                for e in spec[part]:
                    # add_expectation, not add_expectation_configuration: the latter upserts by
                    # domain, so two expectations on one column would collapse into one.
                    config = ExpectationConfiguration(
                        type=e["type"], kwargs=e["kwargs"], meta=e["meta"], severity=e["severity"]
                    )
                    suite.add_expectation(config.to_domain_obj())
                suite = self.context.suites.add(suite)
                self.definitions[(name, part)] = self.context.validation_definitions.add(
                    gx.ValidationDefinition(name=f"{name}.{part}", data=batch, suite=suite)
                )

    def validate(self, suite: str, frame: pd.DataFrame, parameters: dict, delivery: str) -> list[Outcome]:
        """Both parts of a dataset's suite on one delivery file's frame (see ``frame.dataset_frame``).

        The delivery month is the GX run name, so a Data Docs page says which delivery it judged.
        """
        from great_expectations.core.run_identifier import RunIdentifier

        loaded = frame[frame["_rule"].isna()].drop(columns=["_rule", "_defect"])
        outcomes = []
        for part, batch in ((ALL_ROWS, frame), (LOADED_ROWS, loaded)):
            result = self.definitions[(suite, part)].run(
                batch_parameters={"dataframe": batch},
                expectation_parameters=parameters,
                result_format=RESULT_FORMAT,
                run_id=RunIdentifier(run_name=f"delivery-{delivery}"),
            )
            outcomes += [_outcome(suite, r) for r in result.results]
        return outcomes

    def build_docs(self) -> Path:
        assert self.docs_dir is not None, "this validator has no Data Docs site"
        self.context.build_data_docs(site_names=[self.unit])
        return self.docs_dir / "index.html"


def _outcome(suite: str, r) -> Outcome:
    config, result = r.expectation_config, r.result or {}
    if r.exception_info and r.exception_info.get("raised_exception"):
        log.warning("%s: %s raised %s", suite, config.type, r.exception_info.get("exception_message"))
    observed = result.get("observed_value") if config.type == "expect_table_row_count_to_be_between" else None
    return Outcome(
        suite=suite,
        rule=config.meta.get("rule", config.type),
        column=config.meta.get("column"),
        expectation=config.type,
        severity=str(getattr(config.severity, "value", config.severity)),
        success=bool(r.success),
        unexpected=result.get("unexpected_count"),
        rows=result.get("element_count"),
        observed=observed,
    )
