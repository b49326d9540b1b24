"""A loaded platform home and a running ``knutpunkt workbench`` on it, for the workbench's tests.

The home is small and made once per test run (shared by xdist workers, as the main job is):
folkbokföring, socialtjänst and skola generated and loaded through the real border with their
checks (which also build their Data Docs), no steward decision yet. Each test module works on a copy
of it and of the contracts, and starts the workbench as a user does: the installed console script,
in its own process, on a free port.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from pipelines.settings import REPO_ROOT, Paths
from pipelines.stewardship.contracts import DEFAULT_DIR
from pipelines.workbench.accounts import Accounts
from tests.conftest import KNUTPUNKT

REGISTRAR = "Registeransvarig, Kommunledningsförvaltningen"  # folkbokforing.aviseringar
SCHOOL = "Verksamhetscontroller, Utbildningsförvaltningen"  # skola.*
AID_STEWARD = "Enhetschef ekonomiskt bistånd, Socialförvaltningen"  # socialtjanst.ekonomiskt_bistand


def artifacts() -> Path:
    """Where the browser tests keep their screenshots (as tests/test_dashboards_browser.py)."""
    root = Path(os.environ.get("KNUTPUNKT_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    return root / "workbench"


@dataclass
class Platform:
    """A copy of the loaded home with its own contracts and secrets, and the environment to use it."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        env = os.environ | {
            "KNUTPUNKT_HOME": str(self.root / "home"),
            "KNUTPUNKT_KEY_FILE": str(self.root / "secrets" / "pseudonym.key"),
            "KNUTPUNKT_CONTRACTS": str(self.root / "contracts"),
            "DAGSTER_HOME": str(self.root / "home" / "dagster"),
        }
        for leaked in ("KNUTPUNKT_PSEUDONYM_KEY", "KNUTPUNKT_STEWARD_KEYS", "KNUTPUNKT_WORKBENCH_SECRETS"):
            env.pop(leaked, None)
        return env

    @property
    def paths(self) -> Paths:
        return Paths(self.root / "home")

    @property
    def accounts(self) -> Accounts:
        return Accounts.from_env(self.env)

    def password(self, steward: str) -> tuple[str, str]:
        [(user, account)] = [(u, a) for u, a in self.accounts.read().items() if a["steward"] == steward]
        return user, account["password"]


@contextmanager
def copy_platform(source: Path, root: Path) -> Iterator[Platform]:
    """A copy of the loaded home; this process's environment points at it (the test verifies the log
    and runs link jobs with the same keys and contracts as the workbench) until the block ends."""
    shutil.copytree(source / "home", root / "home", symlinks=True)
    shutil.copytree(source / "secrets", root / "secrets")
    shutil.copytree(DEFAULT_DIR, root / "contracts")
    platform = Platform(root)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("KNUTPUNKT_HOME", "KNUTPUNKT_KEY_FILE", "KNUTPUNKT_CONTRACTS", "DAGSTER_HOME"):
            mp.setenv(name, platform.env[name])
        for name in ("KNUTPUNKT_PSEUDONYM_KEY", "KNUTPUNKT_STEWARD_KEYS", "KNUTPUNKT_WORKBENCH_SECRETS"):
            mp.delenv(name, raising=False)
        yield platform


@contextmanager
def workbench(platform: Platform) -> Iterator[str]:
    """``knutpunkt workbench --port P`` on the platform, until the block ends; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(platform.root / "workbench.log", "ab")  # noqa: SIM115  (the server outlives this line)
    proc = subprocess.Popen(
        [str(KNUTPUNKT), "workbench", "--port", str(port)],
        env=platform.env,
        cwd=platform.root,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (platform.root / "workbench.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/login", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the workbench did not start within 2 minutes"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def csrf(html: str) -> str:
    """The CSRF token a page's forms carry."""
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def version(html: str) -> str:
    """The contract version a dataset page's approval form says the steward read."""
    return re.search(r'name="version" value="([^"]+)"', html).group(1)


def log_in(url: str, platform: Platform, steward: str) -> requests.Session:
    """A logged-in HTTP session of a steward, as a browser's login form would make it."""
    client = requests.Session()
    page = client.get(f"{url}/login")
    user, password = platform.password(steward)
    done = client.post(
        f"{url}/login",
        data={"csrf": csrf(page.text), "anvandare": user, "losenord": password},
        allow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return client


def states(html: str) -> dict[str, str]:
    """The dataset list page's state per dataset."""
    return dict(re.findall(r'data-dataset="([^"]+)" data-state="([^"]+)"', html))
