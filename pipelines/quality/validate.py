"""Run a unit's committed suite on its deliveries with Great Expectations 1.x (pandas, ephemeral context).

GX's SQL datasource is broken over DuckDB (see the stack notes), so each
dataset's frame is validated in pandas. Results use a bounded ``result_format``
with no unexpected values at all, so neither results, Data Docs nor Dagster
metadata can carry a data value: they say which expectation failed and how many
rows, and the quarantine table says which lines.

GX's cost is almost all fixed per expectation and run (building its metric
graph), hardly per row. So a run over many deliveries checks the ``rows``-scoped
expectations once over all of them (they hold for the whole exactly when they
hold for each) and only the ``delivery``-scoped ones per delivery. If a
``rows`` expectation fails on the whole, every delivery is validated on its own,
so each verdict and count still belongs to one delivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.quality.contract import ALL_ROWS, DELIVERY, LOADED_ROWS, ROWS, load_contract

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict on one file: counts only, never values."""

    suite: str
    part: str  # all_rows | loaded_rows
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
        self.definitions: dict[tuple[str, ...], Any] = {}  # (suite, part[, scope]) -> definition
        for name, spec in load_contract(unit)["suites"].items():
            for part in (ALL_ROWS, LOADED_ROWS):
                for scope in (None, ROWS, DELIVERY):
                    chosen = [e for e in spec[part] if scope in (None, e["meta"]["scope"])]
                    key = (name, part) if scope is None else (name, part, scope)
                    self.definitions[key] = _definition(gx, self.context, batch, ".".join(key), chosen)

    def validate(self, suite: str, frame: pd.DataFrame, parameters: dict, delivery: str) -> list[Outcome]:
        """The whole of a dataset's suite on one delivery's frame (see ``frame.dataset_frame``).

        The delivery month is the GX run name, so a Data Docs page says which delivery it judged.
        """
        return self._run(suite, None, frame, parameters, f"delivery-{delivery}")

    def validate_many(
        self, suite: str, frame: pd.DataFrame, parameters: dict[str, dict]
    ) -> dict[str, list[Outcome]]:
        """A dataset's suite on several deliveries' frame (``_delivery`` tells them apart), per delivery.

        ``parameters`` holds each delivery's ``$PARAMETER`` values, in delivery order.
        """
        parts = {d: group for d, group in frame.groupby("_delivery", sort=False)}
        months = {d: parts.get(d, frame.iloc[0:0]) for d in parameters}
        if len(months) == 1:
            return {d: self.validate(suite, f, parameters[d], d) for d, f in months.items()}
        first, last = next(iter(months)), list(months)[-1]
        together = self._run(suite, ROWS, frame, {}, f"deliveries-{first}..{last}")
        if not all(o.success for o in together):
            return {d: self.validate(suite, f, parameters[d], d) for d, f in months.items()}
        return {
            d: _passed_in(together, f) + self._run(suite, DELIVERY, f, parameters[d], f"delivery-{d}")
            for d, f in months.items()
        }

    def _run(
        self, suite: str, scope: str | None, frame: pd.DataFrame, parameters: dict, run_name: str
    ) -> list[Outcome]:
        from great_expectations.core.run_identifier import RunIdentifier

        outcomes = []
        for part, batch in ((ALL_ROWS, frame), (LOADED_ROWS, _loaded(frame))):
            definition = self.definitions[(suite, part) if scope is None else (suite, part, scope)]
            if not definition.suite.expectations:
                continue
            result = definition.run(
                batch_parameters={"dataframe": batch},
                expectation_parameters=parameters,
                result_format=RESULT_FORMAT,
                run_id=RunIdentifier(run_name=run_name),
            )
            outcomes += [_outcome(suite, part, r) for r in result.results]
        return outcomes

    def build_docs(self) -> Path:
        assert self.docs_dir is not None, "this validator has no Data Docs site"
        self.context.build_data_docs(site_names=[self.unit])
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


def _loaded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["_rule"].isna()].drop(columns=["_rule", "_defect"])


def _passed_in(together: list[Outcome], frame: pd.DataFrame) -> list[Outcome]:
    """The ``rows`` outcomes that passed over all deliveries, as one delivery's: none of its rows failed."""
    rows = {ALL_ROWS: len(frame), LOADED_ROWS: int(frame["_rule"].isna().sum())}
    return [replace(o, unexpected=0, rows=rows[o.part]) for o in together]


def _outcome(suite: str, part: str, r) -> Outcome:
    config, result = r.expectation_config, r.result or {}
    if r.exception_info and r.exception_info.get("raised_exception"):
        log.warning("%s: %s raised %s", suite, config.type, r.exception_info.get("exception_message"))
    observed = result.get("observed_value") if config.type == "expect_table_row_count_to_be_between" else None
    return Outcome(
        suite=suite,
        part=part,
        rule=config.meta.get("rule", config.type),
        column=config.meta.get("column"),
        expectation=config.type,
        severity=str(getattr(config.severity, "value", config.severity)),
        success=bool(r.success),
        unexpected=result.get("unexpected_count"),
        rows=result.get("element_count"),
        observed=observed,
    )
