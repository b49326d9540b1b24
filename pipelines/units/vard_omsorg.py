"""Vård och omsorg (äldreomsorg): home care, nursing-home placement, safety alarms (OSL 26).

The care system exports Parquet and writes personnummer as YYYYMMDD-NNNN.
"""

from pipelines.units.spec import Column, Dataset, Parquet, Unit

UNIT = Unit(
    name="vard_omsorg",
    title="Vård och omsorg",
    forvaltning="Vård- och omsorgsförvaltningen",
    format=Parquet(),
    personnummer_style="twelve_hyphen",
    datasets=(
        Dataset(
            name="hemtjanst",
            description="Home-care hours granted and performed per person and month.",
            columns=(
                Column("personnummer", "person", "personnummer"),
                Column("manad", "month", "month"),
                Column("beviljade_timmar", "granted_hours", "decimal", minimum=0, maximum=744),
                Column("utforda_timmar", "performed_hours", "decimal", minimum=0, maximum=744),
            ),
        ),
        Dataset(
            name="sarskilt_boende",
            description="Nursing-home placements that started in the month.",
            may_be_empty=True,  # no placement started in some months
            columns=(
                Column("personnummer", "person", "personnummer"),
                Column("inflyttningsdatum", "move_in_date", "date"),
                Column("boende", "home", "text"),
            ),
        ),
        Dataset(
            name="trygghetslarm",
            description="Safety-alarm activations per person and month.",
            columns=(
                Column("personnummer", "person", "personnummer"),
                Column("manad", "month", "month"),
                Column("antal_larm", "alarms", "integer", minimum=0, maximum=1000),
            ),
        ),
    ),
)
