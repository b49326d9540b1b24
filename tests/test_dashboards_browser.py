"""Every dashboard renders in a real browser (headless Chromium) with no chart in error and no English
from Superset's interface, for the admin and for two förvaltning managers (each sees only the
dashboards they may list).

The browser is driven from .venv-superset (Selenium is a Superset dependency) by
``dashboards/browser.py``, against the session's Superset server. Screenshots are kept as test
artifacts in ``$KNUTPUNKT_ARTIFACTS/dashboards`` (default ``test-artifacts/dashboards`` in the
repository, ignored by git), one folder per user; the test prints where.
"""

import json
import os
import subprocess
from pathlib import Path

from dashboards.home import REPO_ROOT, SUPERSET_VENV
from tests.test_dashboards import DASHBOARDS, MANAGER_DASHBOARDS, MANAGERS


def artifacts() -> Path:
    root = Path(os.environ.get("KNUTPUNKT_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    return root / "dashboards"


def test_every_dashboard_renders_in_chromium_with_no_chart_in_error_for_admin_and_managers(
    dashboards_platform,
):
    out = artifacts()
    managers = [arg for m in MANAGERS for arg in ("--manager", m)]
    done = subprocess.run(
        [str(SUPERSET_VENV / "bin" / "python"), "-m", "dashboards.browser", "--url", dashboards_platform["url"],
         "--out", str(out), *managers],
        env=dashboards_platform["env"] | {"PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=1500, cwd=REPO_ROOT,
    )  # fmt: skip
    print(f"dashboard screenshots: {out}")
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(report) == {"admin", *MANAGERS}
    for who, dashboards in report.items():
        expected = DASHBOARDS if who == "admin" else MANAGER_DASHBOARDS
        assert {r["title"] for r in dashboards.values()} == expected, who
        for slug, result in dashboards.items():
            where = f"{who}, {slug} (screenshot {result['screenshot']})"
            assert result["errors"] == [], f"{where}: {result['errors']}"
            assert result["english"] == [], f"{where}: Superset's English (dashboards/translations)"
            assert result["charts"] > 0
            assert Path(result["screenshot"]).stat().st_size > 20_000, (
                f"{where}: a rendered page, not a blank one"
            )
    assert done.returncode == 0, done.stderr[-3000:]
