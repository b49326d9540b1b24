"""Where the stewards' Data Docs are: one GX site per unit, from its latest validation.

Under ``$KNUTPUNKT_HOME`` like everything else the platform writes, so the
leak scan of the end-to-end test reads these pages too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.settings import Paths


def data_docs_root(home: Path) -> Path:
    return Paths(home).data_docs


def unit_site(home: Path, unit: str) -> Path:
    return data_docs_root(home) / unit


def reset_site(home: Path, unit: str) -> Path:
    """An empty site folder: the page shows the latest validation only, not every earlier one."""
    site = unit_site(home, unit)
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    return site


def sites(home: Path) -> list[Path]:
    """Each unit's index page that exists."""
    root = data_docs_root(home)
    return sorted(root.glob("*/index.html")) if root.is_dir() else []
