"""Bygg och miljö: building-permit cases (mostly public records).

The permit system exports tab-separated UTF-8 text with ten-digit personnummer.
"""

from pipelines.units.spec import Column, Csv, Dataset, Unit

UNIT = Unit(
    name="bygg_miljo",
    title="Bygg och miljö",
    forvaltning="Samhällsbyggnadsförvaltningen",
    format=Csv(encoding="utf-8", separator="\t", extension="tsv"),
    personnummer_style="ten_separator",
    datasets=(
        Dataset(
            name="bygglov",
            description="Building-permit cases decided in the month.",
            may_be_empty=True,  # a small municipality decides no permit in some months
            columns=(
                Column("diarienummer", "case_id", "text"),
                Column("sokande", "person", "personnummer"),
                Column(
                    "arendetyp",
                    "case_type",
                    "text",
                    allowed=("Nybyggnad", "Tillbyggnad", "Rivning", "Marklov"),
                ),
                Column("inkommen", "received_date", "date"),
                Column("beslutad", "decided_date", "date"),
                Column("avgift", "fee_sek", "decimal", minimum=0, maximum=1_000_000),
            ),
        ),
    ),
)
