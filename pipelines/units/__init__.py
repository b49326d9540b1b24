"""The municipality's units and what each delivers."""

from pipelines.units import (
    arendehandelser,
    bygg_miljo,
    e_tjanster,
    ekonomi,
    folkbokforing,
    kontaktcenter,
    skola,
    socialtjanst,
    vard_omsorg,
)
from pipelines.units.spec import Column, Dataset, Unit

UNITS: dict[str, Unit] = {
    m.UNIT.name: m.UNIT
    for m in (
        folkbokforing,
        socialtjanst,
        skola,
        vard_omsorg,
        bygg_miljo,
        kontaktcenter,
        e_tjanster,
        arendehandelser,
        ekonomi,
    )
}

__all__ = ["UNITS", "Column", "Dataset", "Unit"]
