"""Skola (grundskola): enrolment, absence per term and year-9 merit value (secrecy, OSL 23).

The school system exports UTF-8 CSV with a byte-order mark and twelve-digit
personnummer without separator.
"""

from pipelines.units.spec import Column, Csv, Dataset, Unit

UNIT = Unit(
    name="skola",
    title="Skola",
    forvaltning="Utbildningsförvaltningen",
    format=Csv(encoding="utf-8-sig", separator=","),
    personnummer_style="twelve",
    datasets=(
        Dataset(
            name="inskrivning",
            description="Pupils enrolled at the end of the month.",
            columns=(
                Column("personnummer", "person", "personnummer"),
                Column("skolenhet", "school", "text"),
                Column("arskurs", "grade", "integer", minimum=0, maximum=9),
            ),
        ),
        Dataset(
            name="franvaro",
            description="Absence for the term that just ended (delivered in January and July).",
            delivered_in_months=(1, 7),
            columns=(
                Column("personnummer", "person", "personnummer"),
                Column("termin", "term", "text"),
                Column("franvaro_procent", "absence_pct", "decimal", minimum=0, maximum=100),
                Column(
                    "ogiltig_franvaro_procent", "unexcused_absence_pct", "decimal", minimum=0, maximum=100
                ),
            ),
        ),
        Dataset(
            name="meritvarde",
            description="Year-9 merit value at the end of the school year (delivered in July).",
            delivered_in_months=(7,),
            columns=(
                Column("personnummer", "person", "personnummer"),
                Column("lasar", "school_year", "text"),
                Column("meritvarde", "merit_value", "decimal", minimum=0, maximum=340),
            ),
        ),
    ),
)
