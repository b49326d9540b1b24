"""The municipality's units and what each delivers, read from the dataset contracts (YAML).

``UNITS`` is read on first use, not at import (domain libraries do no work at import), from
``contracts_dir()``: the package's contracts, or ``KNUTPUNKT_CONTRACTS``.
"""

import functools
from pathlib import Path

from pipelines.units.load import ContractError, contracts_dir, read_units
from pipelines.units.spec import Column, Dataset, Unit

UNITS: dict[str, Unit]  # in the order of the contracts' units.yaml


@functools.cache
def _units(folder: Path) -> dict[str, Unit]:
    """Read once per process and folder: the assets, the generator and the border share one spec."""
    return read_units(folder)


def __getattr__(name: str) -> dict[str, Unit]:
    if name == "UNITS":
        return _units(contracts_dir())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["UNITS", "Column", "ContractError", "Dataset", "Unit"]
