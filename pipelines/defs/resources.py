"""The Dagster resource through which assets find the platform's files and keys."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines import runs
from pipelines.border.keys import Keyring, keyring_from_env
from pipelines.settings import Paths
from warehouse.layout import Warehouse


class Platform(dg.ConfigurableResource):
    """Paths come from ``KNUTPUNKT_HOME``; keys from the key file or environment, never from config."""

    home: str = ""

    @property
    def paths(self) -> Paths:
        return Paths(Path(self.home).resolve()) if self.home else Paths.from_env()

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Every writing run uses this resource: it tags the run with the process executing it, so that a
        run killed with its process is told from a live one (``pipelines.runs``)."""
        if context.run is not None and context.instance is not None:
            runs.mark(context.instance, context.run)

    def keyring(self) -> Keyring:
        """Read from the process environment here, where Dagster runs the asset, never held in config."""
        return keyring_from_env()
