"""The Dagster UI, started as the README says, shows one partitioned asset per unit."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from pipelines.units import UNITS
from tests.conftest import KNUTPUNKT

pytestmark = pytest.mark.ui

QUERY = "{ assetNodes { assetKey { path } isPartitioned } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_ui_lists_a_partitioned_asset_per_unit(home):
    port = _free_port()
    ui = subprocess.Popen(
        [str(KNUTPUNKT), "ui", "--port", str(port)],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=home.home.parent,  # outside the repository, as a user runs it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # dagster dev ignores SIGTERM from a non-interactive parent: stop the group
    )
    try:
        deadline, nodes = time.monotonic() + 120, None
        while nodes is None and time.monotonic() < deadline:
            try:
                nodes = _graphql(port)["data"]["assetNodes"]
            except (OSError, KeyError, TypeError):
                time.sleep(1)
        assert nodes is not None, "the Dagster UI did not answer within 120 s"
        partitioned = {tuple(n["assetKey"]["path"]) for n in nodes if n["isPartitioned"]}
        assert partitioned == {("units", unit) for unit in UNITS}
    finally:
        os.killpg(ui.pid, signal.SIGKILL)
        ui.wait()
