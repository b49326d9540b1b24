"""Two stewards use the workbench in headless Chromium: they log in, read their dataset list and a
dataset page, approve, and later revoke, through the pages; a small link run after each round shows
the cross-unit zone sharing and withdrawing accordingly. One steward opening the other's dataset is
refused in the browser too (the HTTP probes are in tests/test_workbench.py).

Screenshots of the list, a dataset page, the approval and the revocation, per steward, are kept in
``$KNUTPUNKT_ARTIFACTS/workbench`` (default ``test-artifacts/workbench``, ignored by git).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import LINK_JOB, defs
from pipelines.defs.anchors import platform_instance
from pipelines.defs.cross_unit import citizen_index
from pipelines.stewardship import audit
from tests.chromium import Browser
from tests.conftest import small_municipality
from tests.workbench import REGISTRAR, SCHOOL, Platform, artifacts, copy_platform, workbench
from warehouse.layout import Warehouse

pytestmark = [pytest.mark.ui, pytest.mark.platform]  # a server, a browser and Dagster link runs
REGISTER = "folkbokforing.aviseringar"
ENROLMENT = "skola.inskrivning"
STEWARDS = {REGISTRAR: ("registeransvarig", REGISTER), SCHOOL: ("skola", ENROLMENT)}


@pytest.fixture
def platform(tmp_path_factory, tmp_path) -> Iterator[Platform]:
    with copy_platform(small_municipality(tmp_path_factory), tmp_path / "platform") as platform:
        yield platform


def _link(platform: Platform) -> set[str]:
    """A link run of the register and skola on the platform's instance; the cross-unit tables after it."""
    selection = [citizen_index.key, dg.AssetKey(["cross_unit", "skola"])]
    with platform_instance(platform.paths) as instance:
        job = defs().resolve_job_def(LINK_JOB.name)
        result = job.execute_in_process(instance=instance, asset_selection=selection, raise_on_error=False)
    assert result.success
    with duckdb.connect(str(Warehouse(platform.paths.warehouse).cross_unit), read_only=True) as con:
        return {
            f"{s}.{t}"
            for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        }


def _log_in(browser: Browser, url: str, platform: Platform, steward: str) -> None:
    user, password = platform.password(steward)
    browser.goto(f"{url}/")
    assert browser.url.endswith("/login"), "the list needs a login"
    browser.fill("#anvandare", user)
    browser.fill("#losenord", password)
    browser.click("#logga-in")
    assert browser.text("#steward") == steward


def _decide(browser: Browser, url: str, dataset: str, shot: str, form: dict[str, str], button: str) -> str:
    browser.goto(f"{url}/datamangd/{dataset}")
    for selector, value in form.items():
        (browser.set_value if selector in ("#slutdatum", "#andamal") else browser.fill)(selector, value)
    browser.click(button)
    browser.screenshot(artifacts() / shot)
    return browser.text("#beslut")


def test_two_stewards_approve_and_revoke_in_the_browser_and_the_link_run_follows(platform, tmp_path):
    browsers = {steward: Browser(tmp_path / f"profile-{name}") for steward, (name, _) in STEWARDS.items()}
    try:
        with workbench(platform) as url:
            for steward, (name, dataset) in STEWARDS.items():
                browser = browsers[steward]
                _log_in(browser, url, platform, steward)
                browser.screenshot(artifacts() / f"{name}-1-lista.png")
                assert dataset in browser.text("#datamangder") and "väntar på beslut" in browser.text(
                    "#datamangder"
                )
                browser.goto(f"{url}/datamangd/{dataset}")
                page = browser.text()
                assert "Det här skulle delas" in page and "Risk för återidentifiering" in page
                assert "Rader som skulle delas" in page and browser.text("#status") == "väntar på beslut"
                browser.screenshot(artifacts() / f"{name}-2-datamangd.png")
                said = _decide(
                    browser,
                    url,
                    dataset,
                    f"{name}-3-godkannande.png",
                    {"#anteckning": "test"},
                    "#godkann-knapp",
                )
                assert "Godkännandet är registrerat" in said and browser.text("#status") == "godkänd"

            other = browsers[SCHOOL]
            other.goto(f"{url}/")
            assert "godkänd" in other.text("#datamangder")
            other.screenshot(artifacts() / "skola-4-lista-efter-beslut.png")
            other.goto(f"{url}/datamangd/{ENROLMENT}")
            other.click("#datadocs")  # the unit's Data Docs, served by the workbench, rendered offline
            time.sleep(2)  # bootstrap-table fills the results table by script
            assert other.evaluate("document.querySelectorAll('[data-href^=\"validations/\"]').length") >= 1
            other.screenshot(artifacts() / "skola-4-datadokumentation.png")
            other.goto(f"{url}/datamangd/{REGISTER}")
            assert "förvaltas av någon annan" in other.text("#refused")
            other.screenshot(artifacts() / "skola-4-nekad.png")
            assert "Det här skulle delas" not in other.text()

            shared = _link(platform)
            assert {"main.citizen_index", "skola.inskrivning"} <= shared

            for steward, (name, dataset) in STEWARDS.items():
                form = {"#skal": "ändamålet har upphört"}
                said = _decide(
                    browsers[steward], url, dataset, f"{name}-5-aterkallelse.png", form, "#aterkalla-knapp"
                )
                assert (
                    "Återkallelsen är registrerad" in said
                    and browsers[steward].text("#status") == "återkallad"
                )
            browsers[SCHOOL].goto(f"{url}/logg")
            assert "Loggen verifierar" in browsers[SCHOOL].text("#verdict")
            browsers[SCHOOL].screenshot(artifacts() / "skola-6-logg.png")

        left = _link(platform)
        assert "main.citizen_index" not in left and "skola.inskrivning" not in left
        decisions = [
            (e.action, e.dataset, e.actor)
            for e in audit.verify(platform.paths)
            if e.action in audit.DECISIONS
        ]
        assert decisions == [
            ("approve", REGISTER, REGISTRAR),
            ("approve", ENROLMENT, SCHOOL),
            ("revoke", REGISTER, REGISTRAR),
            ("revoke", ENROLMENT, SCHOOL),
        ]
    finally:
        for browser in browsers.values():
            browser.close()
    print(f"workbench screenshots: {artifacts()}")
    for name, _ in STEWARDS.values():
        for shot in ("1-lista", "2-datamangd", "3-godkannande", "5-aterkallelse"):
            assert (artifacts() / f"{name}-{shot}.png").stat().st_size > 20_000, (
                "a rendered page, not a blank one"
            )
