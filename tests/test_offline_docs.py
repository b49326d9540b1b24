"""The stewards' Data Docs render with the network off and load nothing from the internet.

A delivery is loaded and checked as the unit's asset does, which builds the unit's Data Docs site;
headless Chromium then opens its pages with every host name unresolvable and no proxy reachable,
as on a municipal network without internet. The control is the same site pointed back at GX's
CDNs: it renders no results offline, so the test can tell the two apart.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.quality import docs
from pipelines.quality.offline_docs import LOCAL, PACKAGES, external_assets
from tests.conftest import SOCIAL, load_checked
from tests.corpus import write_good

MONTH = "2024-03"


@pytest.fixture
def site(home, keys) -> Path:
    write_good(home, "socialtjanst", MONTH)
    load_checked(SOCIAL, [MONTH], home, keys)
    return docs.unit_site(home.home, "socialtjanst")


def _offline_dom(page: Path) -> str:
    """The page's DOM after its scripts ran, in Chromium with no network at all."""
    chromium = shutil.which("chromium")
    assert chromium, "the browser tests need Debian's chromium (.ci/run installs it)"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--proxy-server=127.0.0.1:9", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _results(dom: str) -> int:
    """Rows of the index's validation results table (bootstrap-table renders them by script)."""
    return dom.count('data-href="validations/')


def test_the_data_docs_load_nothing_from_the_internet(site):
    assert (site / "index.html").exists()
    assert external_assets(site) == {}, "every script, style sheet and image is the site's own"
    assert "great-expectations-web-assets" not in "".join(p.read_text() for p in site.rglob("*.html"))
    for package in PACKAGES.values():
        assert any((site.parent / "vendor" / package.folder).rglob("*.*s*")), package.name


@pytest.mark.ui
def test_the_data_docs_render_their_results_with_the_network_off(site, tmp_path):
    validations = len(list((site / "validations").rglob("*.html")))
    assert validations == len(SOCIAL.datasets), "one validation per dataset of the delivery"
    assert _results(_offline_dom(site / "index.html")) == validations, "each listed, rendered offline"
    control = tmp_path / "cdn"
    shutil.copytree(site, control)
    for page in control.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for url, (name, path) in LOCAL.items():
            text = re.sub(
                rf'"[./]*vendor/{re.escape(PACKAGES[name].folder)}/{re.escape(path)}"', f'"{url}"', text
            )
        page.write_text(text, encoding="utf-8")
    assert external_assets(control), "the control loads from the CDNs, as GX wrote it"
    assert _results(_offline_dom(control / "index.html")) == 0, "GX's own pages show nothing offline"
