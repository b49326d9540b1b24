"""Kontaktcenter: contacts by channel and topic; most callers stay anonymous.

The contact-centre platform exports UTF-8 CSV; when a caller identifies,
the personnummer is written as the agent typed it (several forms).
"""

from pipelines.units.spec import Column, Csv, Dataset, Unit

CHANNELS = ("telefon", "chatt", "e-post", "webb")

UNIT = Unit(
    name="kontaktcenter",
    title="Kontaktcenter",
    forvaltning="Kommunledningsförvaltningen",
    format=Csv(encoding="utf-8", separator=","),
    personnummer_style="mixed",
    datasets=(
        Dataset(
            name="kontakter",
            description="Every contact handled in the month.",
            columns=(
                Column("kontakt_id", "contact_id", "text"),
                Column("tidpunkt", "contacted_at", "timestamp"),
                Column("kanal", "channel", "text", allowed=CHANNELS),
                Column("amne", "topic", "text", scan_contacts=True),  # agents type notes into it
                Column("personnummer", "person", "personnummer", mandatory=False),
                Column("lost_vid_forsta_kontakt", "solved_first_contact", "boolean"),
            ),
        ),
    ),
)
