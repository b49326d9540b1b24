"""Shared fixtures: every test gets its own platform home and key file outside the repository."""

import os
import subprocess
import sys
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


def main_job_env(root: Path) -> dict[str, str]:
    """Environment for a main-job subprocess with its own home and key file under ``root``."""
    env = os.environ | {
        "KNUTPUNKT_HOME": str(root / "home"),
        "KNUTPUNKT_KEY_FILE": str(root / "secrets" / "pseudonym.key"),
    }
    env.pop("KNUTPUNKT_PSEUDONYM_KEY", None)
    return env


def run_main_job(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``knutpunkt run`` as bin/demo runs it, in a subprocess; its output is kept in the home."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    Path(env["KNUTPUNKT_HOME"], "main-job.log").write_text(done.stdout + done.stderr)
    return done


DISCOVERY_RUN = ["--citizens", "2500", "--years", "2", "--seed", "5"]  # also the dashboards' data


@pytest.fixture(scope="session")
def discovery_platform(tmp_path_factory) -> dict:
    """One small main-job run shared by the discovery, notebook and dashboard tests: its home and manifest."""
    import json

    root = tmp_path_factory.mktemp("discovery")
    env = main_job_env(root)
    done = run_main_job(env, *DISCOVERY_RUN)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    paths = Paths(root / "home")
    return {
        "env": env,
        "paths": paths,
        "warehouse": Warehouse(paths.warehouse),
        "current": paths.warehouse / "serving" / "current.duckdb",
        "manifest": json.loads((paths.ground_truth / "manifest.json").read_text()),
    }


@pytest.fixture(scope="session")
def dashboards_platform(discovery_platform) -> dict:
    """The dashboards deployed (``knutpunkt dashboards deploy``) on a copy of the discovery run, and one
    Superset server (gunicorn) shared by the dashboard and browser tests; stopped by process group.

    The copy (home and secrets) lives in its own temporary folder: run as root, Superset runs as the
    service user, which must pass through every folder above the home, and pytest keeps its own
    temporary tree private (0700) to root.
    """
    import shutil
    import socket
    import tempfile

    from dashboards import server
    from dashboards.home import SupersetHome

    source = discovery_platform["paths"].home.parent
    root = Path(tempfile.mkdtemp(prefix="knutpunkt-dashboards-"))
    shutil.copytree(source / "home", root / "home", symlinks=True)
    shutil.copytree(source / "secrets", root / "secrets")
    env = main_job_env(root)
    deploy = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "dashboards", "deploy"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = SupersetHome.from_env(env)
    proc = server.start(home, port, home.root / "server.log")
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "home": home,
            "env": env,
            "paths": Paths(root / "home"),
            "credentials": home.read_credentials(),
            "process": proc,
        }
    finally:
        server.stop(proc)
        shutil.rmtree(root, ignore_errors=True)
