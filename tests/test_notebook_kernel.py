"""Attacks from an analyst's notebook: code typed into the kernel tries to read raw data.

The notebook helper reads only the serving snapshot, but a kernel runs whatever is typed into it, so
the boundary is the operating system: the analysts' kernel ``knutpunkt`` runs, when the platform runs
as root, as ``knutpunkt-analyst`` (``pipelines/serving/kernel.py``). Each probe runs in a real kernel
started by nbclient from a real kernelspec, on the shared main-job home, and reports per target what
``open`` did. The same probe in Jupyter's ordinary ``python3`` kernel reads everything: that is what
the isolation takes away, and it shows the probe would catch a kernel that is not isolated.
"""

import grp
import json
import os
import pwd
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pipelines.serving.access import SERVING_GROUP
from pipelines.serving.service_users import ANALYST_USER, SERVING_USER

KEY_VARIABLES = ("KNUTPUNKT_KEY_FILE", "KNUTPUNKT_PSEUDONYM_KEY")

root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="a separate analyst user needs root; as another user the kernel is the user's"
)

PROBE = """
import json, os
found = {"uid": os.getuid(), "groups": os.getgroups(), "env": sorted(os.environ)}
for name, path in json.loads(%r).items():
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(64)
        found[name] = "read"
    except OSError as e:
        found[name] = type(e).__name__
print(json.dumps(found))
"""


def _targets(platform: dict) -> dict[str, str]:
    """What an analyst's code must never read, and the snapshot it must."""
    home = platform["paths"]
    landing = sorted((home.landing / "folkbokforing").rglob("*.csv"))[0]  # personnummer, names, addresses
    return {
        "landing file": landing,
        "landing folder": home.landing,
        "key file": Path(platform["env"]["KNUTPUNKT_KEY_FILE"]),
        "unit zone": home.warehouse / "units" / "socialtjanst.duckdb",
        "vault": home.warehouse / "vault" / "socialtjanst.duckdb",
        "cross-unit zone": home.warehouse / "cross_unit.duckdb",
        "marts": home.warehouse / "marts.duckdb",
        "home listing": home.home,
        "serving snapshot": platform["current"],
    }


def _probe(kernel_name: str, platform: dict, monkeypatch) -> dict:
    """Run the probe in a fresh kernel started as Jupyter starts it, from an environment that holds
    the key file's path and a pseudonym key (as a platform user's shell may)."""
    targets = _targets(platform)
    for path in targets.values():
        assert path.exists(), path
    monkeypatch.setenv("KNUTPUNKT_HOME", str(platform["paths"].home))
    monkeypatch.setenv("KNUTPUNKT_KEY_FILE", platform["env"]["KNUTPUNKT_KEY_FILE"])
    monkeypatch.setenv("KNUTPUNKT_PSEUDONYM_KEY", "00" * 32)
    book = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(PROBE % json.dumps({k: str(v) for k, v in targets.items()}))]
    )
    NotebookClient(book, timeout=120, kernel_name=kernel_name).execute()
    (out,) = [o for o in book.cells[0].outputs if o.get("name") == "stdout"]
    return json.loads(out["text"])


@root_only
def test_the_analysts_kernel_reads_the_serving_snapshot_and_no_raw_data(
    discovery_platform, analyst_kernel, monkeypatch
):
    found = _probe(analyst_kernel, discovery_platform, monkeypatch)
    assert found["serving snapshot"] == "read"
    raw = {k: v for k, v in found.items() if k in _targets(discovery_platform) and k != "serving snapshot"}
    assert raw == dict.fromkeys(raw, "PermissionError"), f"the analyst's kernel reached raw data: {raw}"
    analyst = pwd.getpwnam(ANALYST_USER)
    assert (found["uid"], grp.getgrnam(SERVING_GROUP).gr_gid in found["groups"]) == (analyst.pw_uid, True)


@root_only
def test_the_analysts_kernel_is_not_superset_s_user(discovery_platform, analyst_kernel, monkeypatch):
    """A kernel running as knutpunkt-serving could rewrite Superset's roles and row-level security
    (its metadata is 0700 to that user) and read its secret keys from its processes' environment."""
    found = _probe(analyst_kernel, discovery_platform, monkeypatch)
    assert found["uid"] != pwd.getpwnam(SERVING_USER).pw_uid
    assert found["uid"] != 0


def test_the_analysts_kernel_gets_no_key_material(discovery_platform, analyst_kernel, monkeypatch):
    """Not the key file's path, not the pseudonym key; the platform home, so the helper finds it."""
    found = _probe(analyst_kernel, discovery_platform, monkeypatch)
    assert [v for v in KEY_VARIABLES if v in found["env"]] == []
    assert "KNUTPUNKT_HOME" in found["env"]


def test_the_probe_reads_raw_data_in_an_ordinary_kernel(discovery_platform, monkeypatch):
    """The control: Jupyter's own python3 kernel runs as the platform user and reads every target,
    and inherits the key variables. Without the isolation, the tests above fail."""
    found = _probe("python3", discovery_platform, monkeypatch)
    targets = _targets(discovery_platform)
    assert {k: found[k] for k in targets} == dict.fromkeys(targets, "read")
    assert all(v in found["env"] for v in KEY_VARIABLES)


@root_only
def test_the_connection_file_is_handed_over_without_following_a_planted_symlink(tmp_path):
    """The analyst owns the folder root copies the connection file into: a symlink planted there
    must not make root write (or give the analyst) a file elsewhere."""
    from pipelines.serving import kernel, service_users

    user = service_users.analyst_user()
    connection = tmp_path / "kernel-1.json"
    connection.write_text('{"key": "secret"}')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = tmp_path / "runtime"
    planted.symlink_to(elsewhere)
    with pytest.raises(service_users.IsolationError):
        kernel._hand_over(connection, user, runtime=planted)
    assert list(elsewhere.iterdir()) == []

    runtime = tmp_path / "own"
    runtime.mkdir()
    (runtime / "kernel-1.json").symlink_to(elsewhere / "target")  # a planted file name: replaced
    copy = kernel._hand_over(connection, user, runtime=runtime)
    assert not copy.is_symlink() and copy.read_text() == connection.read_text()
    assert (copy.stat().st_uid, oct(copy.stat().st_mode & 0o777)) == (user.uid, "0o600")
    assert list(elsewhere.iterdir()) == []
