"""E-tjänster: submissions per e-service, digital or on paper.

The e-service platform exports JSON lines with twelve-digit personnummer.
"""

from pipelines.units.spec import Column, Dataset, JsonLines, Unit

UNIT = Unit(
    name="e_tjanster",
    title="E-tjänster",
    forvaltning="Kommunledningsförvaltningen",
    format=JsonLines(),
    personnummer_style="twelve",
    datasets=(
        Dataset(
            name="inlamningar",
            description="Submissions received in the month.",
            columns=(
                Column("inlamning_id", "submission_id", "text"),
                Column("etjanst", "e_service", "text"),
                Column("kanal", "channel", "text", allowed=("digital", "papper")),
                Column("inkommen", "submitted_at", "timestamp"),
                Column("personnummer", "person", "personnummer"),
            ),
        ),
    ),
)
