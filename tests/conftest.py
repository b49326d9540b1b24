"""Shared fixtures: every test gets its own platform home and key file outside the repository."""

from pathlib import Path

import pytest

from pipelines.border.keys import load_keyring
from pipelines.settings import Paths
from pipelines.units import UNITS
from pipelines.units.spec import Csv, Unit
from warehouse.layout import Warehouse


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.setenv("KNUTPUNKT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KNUTPUNKT_KEY_FILE", str(tmp_path / "secrets" / "pseudonym.key"))
    monkeypatch.delenv("KNUTPUNKT_PSEUDONYM_KEY", raising=False)
    return Paths.from_env()


@pytest.fixture
def warehouse(home: Paths) -> Warehouse:
    return Warehouse(home.warehouse)


@pytest.fixture
def keys(home: Paths):
    return load_keyring()


def write_csv(
    home: Paths, unit: Unit, delivery: str, dataset: str, rows: list[list[str]], header=None
) -> Path:
    """Write a delivery file the way the unit's source system would (encoding, separator)."""
    fmt = unit.format
    assert isinstance(fmt, Csv)
    ds = unit.dataset(dataset)
    path = home.delivery_dir(unit.name, delivery) / ds.file_name(fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header or [c.source for c in ds.columns], *rows]
    text = "".join(fmt.separator.join(line) + "\r\n" for line in lines)
    path.write_bytes(text.encode(fmt.encoding))
    return path


SOCIAL = UNITS["socialtjanst"]
