"""Shared fixtures: every test gets its own platform home and key file outside the repository."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from pipelines.border.keys import keyring_from_env
from pipelines.settings import REPO_ROOT, Paths
from pipelines.units import UNITS
from pipelines.units.spec import Csv, Unit
from warehouse.layout import Warehouse

# A test's tier follows from what it needs: a Superset server or browser makes it ``ui``, the main-job
# run makes it ``platform``; a test that executes Dagster runs of its own marks itself ``platform``.
# The rest are ``unit`` (``bin/test --fast``): functions, DuckDB files and the CLI, no Dagster run.
TIER_OF_FIXTURE = {"dashboards_platform": "ui", "main_job": "platform"}
TIERS = ("ui", "platform", "unit")


# bin/test distributes work units to the two xdist workers (``--dist loadgroup``): a unit is a test file,
# except that every test on the Superset deployment is one unit, so that it is deployed once per run.
SUPERSET_GROUP = "superset"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marked = {m.name for m in item.iter_markers()} & set(TIERS)
        needed = {TIER_OF_FIXTURE[f] for f in item.fixturenames if f in TIER_OF_FIXTURE}
        tier = next(t for t in TIERS if t in marked | needed | {"unit"})
        if tier not in marked:
            item.add_marker(tier)
        on_superset = "dashboards_platform" in item.fixturenames
        item.add_marker(pytest.mark.xdist_group(SUPERSET_GROUP if on_superset else item.path.name))
        if on_superset:
            item.add_marker("long")  # the group as a whole: minutes of deploy, API and browser tests
    # Longest work first (bin/test keeps this order: --no-loadscope-reorder): the chaos test, which
    # needs no main job, starts on one worker while the other runs the shared main job.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@contextlib.contextmanager
def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Path, bool]]:
    """A folder ``name`` shared by every xdist worker of this test run, and whether this worker must fill
    it: the first to enter, or the next one if filling it raised (each worker then shows the error
    itself, not a missing file); the others wait on a file lock until it is filled."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with FileLock(shared / f"{name}.lock"):
        folder, filled = shared / name, shared / f"{name}.filled"
        first = not filled.exists()
        if first:
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(exist_ok=True)
        yield folder, first
        filled.touch()


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
    return keyring_from_env()


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


def load_checked(unit: Unit, deliveries: list[str], paths: Paths, keys) -> None:
    """Load deliveries and run their quality checks, as the unit's asset does: only a delivery whose
    checks passed is released to the sharing gate (a load alone leaves it held as unchecked)."""
    from pipelines.defs.unit_checks import check_deliveries
    from pipelines.ingest.delivery import load_deliveries

    wh = Warehouse(paths.warehouse)
    for _ in load_deliveries(unit, deliveries, paths.landing, wh, keys):
        pass
    check_deliveries(unit, deliveries, paths, wh)


SMALL_LOADED = ("folkbokforing", "socialtjanst", "skola")


def load_small_municipality(root: Path) -> Paths:
    """A small municipality (300 citizens, one year, seed 11) generated under ``root/home`` and loaded
    with its checks for folkbokföring, socialtjänst and skola, key file in ``root/secrets``; no steward
    decision yet. The stewardship and workbench tests work on copies of it."""
    from synthetic.generate import generate

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KNUTPUNKT_HOME", str(root / "home"))
        mp.setenv("KNUTPUNKT_KEY_FILE", str(root / "secrets" / "pseudonym.key"))
        mp.delenv("KNUTPUNKT_PSEUDONYM_KEY", raising=False)
        paths = Paths.from_env()
        generate(paths.home, citizens=300, years=1, seed=11, progress=False)
        keys = keyring_from_env()
        for unit in SMALL_LOADED:
            load_checked(UNITS[unit], sorted(p.name for p in (paths.landing / unit).iterdir()), paths, keys)
    return paths


def small_municipality(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding ``home`` and ``secrets`` of :func:`load_small_municipality`, built once per
    test run and shared by the xdist workers; tests work on copies of it."""
    with once_per_run(tmp_path_factory, "small-municipality") as (root, first):
        if first:
            load_small_municipality(root)
    return root


# The installed console script, run from a folder outside the repository as a user runs it: a package
# missing from pyproject's package list, or an import that works only from the repository root, fails here.
KNUTPUNKT = Path(sys.executable).with_name("knutpunkt")
HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(600)"


@contextlib.contextmanager
def held_open(zone: Path) -> Iterator[None]:
    """Another process holds a DuckDB file open for writing: a run that writes it fails."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(zone)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        yield
    finally:
        holder.kill()
        holder.wait()


def main_job_env(root: Path) -> dict[str, str]:
    """Environment for a main-job subprocess with its own home and key file under ``root``."""
    env = os.environ | {
        "KNUTPUNKT_HOME": str(root / "home"),
        "KNUTPUNKT_KEY_FILE": str(root / "secrets" / "pseudonym.key"),
    }
    for leaked in ("KNUTPUNKT_PSEUDONYM_KEY", "PYTHONPATH"):
        env.pop(leaked, None)
    return env


def knutpunkt(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``knutpunkt ARGS`` in a subprocess, from the home's parent folder (outside the repository)."""
    cwd = Path(env["KNUTPUNKT_HOME"]).parent
    assert REPO_ROOT not in (cwd, *cwd.parents), "run it from outside the repository, as a user does"
    return subprocess.run(
        [str(KNUTPUNKT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def run_main_job(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``knutpunkt run`` as bin/demo runs it; its output is kept in the home."""
    done = knutpunkt(env, "run", *args)
    Path(env["KNUTPUNKT_HOME"], "main-job.log").write_text(done.stdout + done.stderr)
    return done


MAIN_JOB_RUN = ["--citizens", "2500", "--years", "2", "--seed", "5"]


@pytest.fixture(scope="session")
def main_job(tmp_path_factory) -> dict:
    """The one main-job run of a test session (``knutpunkt run``, as bin/demo runs it), shared by every
    platform-tier test: the end-to-end, marts, discovery, notebook and dashboard tests read what it wrote.
    Tests that change a home work on a copy of it."""
    with once_per_run(tmp_path_factory, "main-job") as (root, first):
        env = main_job_env(root)
        if first:
            done = run_main_job(env, *MAIN_JOB_RUN)
            result = {"stdout": done.stdout, "stderr": done.stderr, "returncode": done.returncode}
            (root / "result.json").write_text(json.dumps(result))
        result = json.loads((root / "result.json").read_text())
    paths = Paths(root / "home")
    return {
        "env": env,
        "paths": paths,
        "warehouse": Warehouse(paths.warehouse),
        "marts": paths.warehouse / "marts.duckdb",
        "current": paths.warehouse / "serving" / "current.duckdb",
        "manifest": json.loads((paths.ground_truth / "manifest.json").read_text()),
        "stdout": result["stdout"],
        "output": result["stdout"] + result["stderr"],
        "returncode": result["returncode"],
    }


@pytest.fixture(scope="session")
def discovery_platform(main_job) -> dict:
    """The main job's home, for tests that need every step of it to have run."""
    assert main_job["returncode"] == 0, main_job["output"][-6000:]
    return main_job


@pytest.fixture(scope="session")
def dashboards_platform(discovery_platform) -> dict:
    """The dashboards deployed (``knutpunkt dashboards deploy``) on a copy of the discovery run, and one
    Superset server (gunicorn) per test worker, shared by its dashboard and browser tests; stopped by process group.

    The copy (home and secrets) lives in its own temporary folder: run as root, Superset runs as the
    service user, which must pass through every folder above the home, and pytest keeps its own
    temporary tree private (0700) to root.
    """
    import socket
    import tempfile

    from dashboards import server
    from dashboards.home import SupersetHome

    source = discovery_platform["paths"].home.parent
    root = Path(tempfile.mkdtemp(prefix="knutpunkt-dashboards-"))
    shutil.copytree(source / "home", root / "home", symlinks=True)
    shutil.copytree(source / "secrets", root / "secrets")
    env = main_job_env(root)
    deploy = knutpunkt(env, "dashboards", "deploy", timeout=600)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = SupersetHome.from_env(env)
    log = open(home.root / "server.log", "ab")  # noqa: SIM115  (the server outlives this block)
    proc = subprocess.Popen(
        [str(KNUTPUNKT), "dashboards", "serve", "--port", str(port)],
        env=env,
        cwd=Path(env["KNUTPUNKT_HOME"]).parent,
        stdout=log,
        stderr=log,
        start_new_session=True,  # `knutpunkt dashboards serve` and gunicorn under it: stopped as a group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_until_healthy(url, proc)
        yield {
            "url": url,
            "home": home,
            "env": env,
            "paths": Paths(root / "home"),
            "credentials": home.read_credentials(),
            "process": proc,
        }
    finally:
        server.stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def analyst_kernel(tmp_path_factory) -> str:
    """The analysts' kernelspec ``knutpunkt`` (bin/setup installs it; installing again is harmless).
    As root its kernels run as ``knutpunkt-analyst``; as another user, as that user with a warning."""
    from pipelines.serving import kernel

    with once_per_run(tmp_path_factory, "kernelspec") as (_, first):
        if first:
            kernel.install()
    return kernel.KERNEL_NAME
