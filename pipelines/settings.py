"""Where the platform keeps its files, set by ``KNUTPUNKT_HOME`` (default ``var/`` in the checkout)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HOME_ENV = "KNUTPUNKT_HOME"


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Paths:
        return cls(Path(env.get(HOME_ENV, REPO_ROOT / "var")).resolve())

    @property
    def landing(self) -> Path:
        """Unit deliveries as they arrive: the only place raw personnummer exist."""
        return self.home / "landing"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dbt(self) -> Path:
        """dbt's target folder per run and the main job's last build log."""
        return self.home / "dbt"

    @property
    def data_docs(self) -> Path:
        """Great Expectations Data Docs, one site per unit."""
        return self.home / "quality" / "data_docs"

    @property
    def stewardship(self) -> Path:
        """The audit log of stewards' decisions and its head: never inside the repository."""
        return self.home / "stewardship"

    @property
    def ground_truth(self) -> Path:
        """What the synthetic generator planted, kept apart from landing so discovery can be scored."""
        return self.home / "ground_truth"

    def delivery_dir(self, unit: str, delivery: str) -> Path:
        return self.landing / unit / delivery


def knutpunkt_command() -> str:
    """This installation's ``knutpunkt``, spelled so it runs from any folder (for hints we print)."""
    script = Path(sys.executable).with_name("knutpunkt")
    return str(script) if script.exists() else f"{sys.executable} -m pipelines.cli"
