"""Socialtjänst: economic aid and child and youth investigations (strong secrecy, OSL 26).

Its case system exports Windows-1252 CSV with semicolons and decimal commas,
and writes personnummer with ten digits and a '-' (or '+' from age 100).
"""

from pipelines.units.spec import Column, Csv, Dataset, Unit

UNIT = Unit(
    name="socialtjanst",
    title="Socialtjänst",
    forvaltning="Socialförvaltningen",
    format=Csv(encoding="cp1252", separator=";", decimal_comma=True),
    personnummer_style="ten_separator",
    datasets=(
        Dataset(
            name="ekonomiskt_bistand",
            description="Economic aid (försörjningsstöd) paid per household applicant and month.",
            columns=(
                Column("Personnr", "person", "personnummer"),
                Column("Månad", "month", "month"),
                Column("Belopp", "amount_sek", "decimal", minimum=0, maximum=100_000),
                Column(
                    "Hushållstyp",
                    "household_type",
                    "text",
                    allowed=(
                        "Ensamstående",
                        "Sammanboende",
                        "Ensamstående med barn",
                        "Sammanboende med barn",
                    ),
                ),
            ),
        ),
        Dataset(
            name="barnutredningar",
            description="Child and youth investigations opened in the month.",
            may_be_empty=True,  # a small municipality opens none in some months
            columns=(
                Column("Personnr", "person", "personnummer"),
                Column("Startdatum", "start_date", "date"),
                Column("Avslutsdatum", "end_date", "date", mandatory=False),
                Column("Anledning", "reason", "text", allowed=("Anmälan", "Ansökan", "Övrigt")),
            ),
        ),
    ),
)
