"""The state a steward acts on (``stewardship.overview``), every one of its six values made for real on
a copy of the small loaded home: decisions signed and anchored, a refusal recorded as the gate records
it, a delivery held as the quality gate holds it; and ``knutpunkt steward list`` saying the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from pipelines.cli import main
from pipelines.defs.anchors import DagsterAnchors, platform_anchors
from pipelines.stewardship import approvals, audit, overview, signing
from pipelines.stewardship.contracts import load_contracts
from tests.conftest import small_municipality
from tests.workbench import AID_STEWARD, REGISTRAR, SCHOOL, Platform, copy_platform
from warehouse.layout import Warehouse, connect, run

CHILDREN = "Enhetschef barn och unga, Socialförvaltningen"  # socialtjanst.barnutredningar
SOON, LATER = date.today() + timedelta(days=20), date.today() + timedelta(days=300)


@pytest.fixture
def platform(tmp_path_factory, tmp_path) -> Iterator[Platform]:
    with copy_platform(small_municipality(tmp_path_factory), tmp_path / "platform") as platform:
        for steward in (REGISTRAR, SCHOOL, AID_STEWARD, CHILDREN):
            signing.create_key(steward)
        yield platform


@pytest.fixture
def anchors(platform: Platform) -> Iterator[DagsterAnchors]:
    with platform_anchors(platform.paths) as store:
        yield store


def _approve(key: str, steward: str, expires: date, platform: Platform, anchors) -> audit.Entry:
    contract = load_contracts()[key]
    return approvals.approve(
        contract, steward, contract.purposes[0].name, expires, paths=platform.paths, anchors=anchors
    )


def test_every_state_and_the_cli_list_agrees(platform, anchors, capsys):
    contracts = load_contracts()
    _approve("folkbokforing.aviseringar", REGISTRAR, LATER, platform, anchors)  # approved
    _approve("skola.inskrivning", SCHOOL, SOON, platform, anchors)  # expiring
    _approve("skola.franvaro", SCHOOL, date.today() - timedelta(days=1), platform, anchors)  # expired
    _approve("skola.meritvarde", SCHOOL, LATER, platform, anchors)
    approvals.revoke(
        contracts["skola.meritvarde"], SCHOOL, "slut", platform.paths, anchors=anchors
    )  # revoked
    aid = "socialtjanst.ekonomiskt_bistand"
    _approve(aid, AID_STEWARD, LATER, platform, anchors)
    audit.record(  # what the gate records when it refuses a contract's output
        "withdraw", dataset=aid, contract_version=contracts[aid].version, details={"state": "refused"},
        paths=platform.paths,
    )  # fmt: skip
    wh = Warehouse(platform.paths.warehouse)
    with connect(wh.unit_zone("socialtjanst")) as con:  # every delivery of the unit held by its checks
        run(
            con,
            "INSERT OR REPLACE INTO held_deliveries SELECT DISTINCT _delivery, 'expectations', 'test', now() "
            "FROM reconciliation",
        )
    _approve(
        "socialtjanst.barnutredningar",
        "Enhetschef barn och unga, Socialförvaltningen",
        LATER,
        platform,
        anchors,
    )

    states = overview.overview(contracts, audit.verify_anchored(anchors, platform.paths), wh)
    expected = {
        "folkbokforing.aviseringar": "approved",
        "skola.inskrivning": "expiring",
        "skola.franvaro": "expired",
        "skola.meritvarde": "revoked",
        aid: "withheld",  # refused by the gate
        "socialtjanst.barnutredningar": "withheld",  # every delivery held
        "vard_omsorg.hemtjanst": "pending",
    }
    assert {k: states[k].state for k in expected} == expected
    assert states[aid].refused is not None and "refused" in states[aid].reason
    assert (
        states["socialtjanst.barnutredningar"].all_held
        and "held" in states["socialtjanst.barnutredningar"].reason
    )
    assert not states["skola.inskrivning"].held, "skola's deliveries are not held"

    capsys.readouterr()
    assert main(["steward", "list"]) == 0
    listed = {}
    for line in capsys.readouterr().out.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 5 and cells[1] in contracts:
            listed[cells[1]] = cells[4]
    assert {k: listed[k] for k in expected} == expected
