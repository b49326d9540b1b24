"""Folkbokföring: the population register as Navet-style change notices (aviseringar).

The first delivery holds every resident (GRUND); later ones hold births, deaths,
moves in and out, and moves within the municipality. Names and addresses arrive
but are never loaded: only birth year and sex are derived at the border.
"""

from pipelines.units.spec import Column, Csv, Dataset, Unit

EVENTS = ("GRUND", "FODD", "INFLYTTAD", "UTFLYTTAD", "AVLIDEN", "FLYTT_INOM")

UNIT = Unit(
    name="folkbokforing",
    title="Folkbokföring",
    forvaltning="Kommunledningsförvaltningen",
    format=Csv(encoding="utf-8", separator=","),
    personnummer_style="twelve",
    datasets=(
        Dataset(
            name="aviseringar",
            description="Population register events per person.",
            columns=(
                Column("personnummer", "person", "personnummer"),
                Column("handelse", "event", "text", allowed=EVENTS),
                Column("handelsedatum", "event_date", "date"),
                Column("distrikt", "district", "text"),
                Column("hushall_id", "household", "key"),
                Column("fornamn", "first_name", "identifier", mandatory=False),
                Column("efternamn", "last_name", "identifier", mandatory=False),
                Column("adress", "address", "identifier", mandatory=False),
            ),
        ),
    ),
)
