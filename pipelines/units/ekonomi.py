"""Ekonomi: budget, outcome and forecast per org unit and month (no person data).

The finance system exports Windows-1252 CSV with semicolons and decimal commas.
"""

from pipelines.units.spec import Column, Csv, Dataset, Unit

UNIT = Unit(
    name="ekonomi",
    title="Ekonomi",
    forvaltning="Kommunledningsförvaltningen",
    format=Csv(encoding="cp1252", separator=";", decimal_comma=True),
    datasets=(
        Dataset(
            name="utfall",
            description="Budget, outcome and year-end forecast per enhet and month, in SEK.",
            columns=(
                Column("Månad", "month", "month"),
                Column("Förvaltning", "forvaltning", "text"),
                Column("Enhet", "enhet", "text"),
                Column("Budget", "budget_sek", "decimal"),
                Column("Utfall", "outcome_sek", "decimal"),
                Column("Prognos", "forecast_sek", "decimal"),
            ),
        ),
    ),
)
