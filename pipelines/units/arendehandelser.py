"""Ärendehändelser: status events that the case systems signal to the case hub.

The hub exports Parquet. Personnummer (of the applicant, when there is one)
are twelve digits with a hyphen.
"""

from pipelines.units.spec import Column, Dataset, Parquet, Unit

STATUSES = ("mottaget", "tilldelat", "beslutat", "avslutat")

UNIT = Unit(
    name="arendehandelser",
    title="Ärendehändelser",
    forvaltning="Kommunledningsförvaltningen",
    format=Parquet(),
    personnummer_style="twelve_hyphen",
    datasets=(
        Dataset(
            name="statushandelser",
            description="Case status changes signalled in the month.",
            columns=(
                Column("arende_id", "case_id", "text"),
                Column("system", "source_system", "text"),
                Column("forvaltning", "forvaltning", "text"),
                Column("arendetyp", "case_type", "text"),
                Column("status", "status", "text", allowed=STATUSES),
                Column("tidpunkt", "event_at", "timestamp"),
                Column("personnummer", "person", "personnummer", mandatory=False),
            ),
        ),
    ),
)
