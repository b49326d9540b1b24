"""Every dashboard renders in a real browser (headless Chromium) with no chart in error.

The browser is driven from .venv-superset (Selenium is a Superset dependency) by
``dashboards/browser.py``, against the session's Superset server. Screenshots are kept as test
artifacts in ``$KNUTPUNKT_ARTIFACTS/dashboards`` (default ``test-artifacts/dashboards`` in the
repository, ignored by git); the test prints where.
"""

import json
import os
import subprocess
from pathlib import Path

from dashboards.home import REPO_ROOT, SUPERSET_VENV
from tests.test_dashboards import DASHBOARDS


def artifacts() -> Path:
    root = Path(os.environ.get("KNUTPUNKT_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    return root / "dashboards"


def test_every_dashboard_renders_in_chromium_with_no_chart_in_error(dashboards_platform):
    out = artifacts()
    done = subprocess.run(
        [str(SUPERSET_VENV / "bin" / "python"), "-m", "dashboards.browser", "--url", dashboards_platform["url"],
         "--out", str(out)],
        env=dashboards_platform["env"] | {"PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
    )  # fmt: skip
    print(f"dashboard screenshots: {out}")
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert {r["title"] for r in report.values()} == DASHBOARDS
    for slug, result in report.items():
        assert result["errors"] == [], f"{slug}: {result['errors']} (screenshot {result['screenshot']})"
        assert result["charts"] > 0
        assert Path(result["screenshot"]).stat().st_size > 20_000, "a rendered page, not a blank one"
    assert done.returncode == 0, done.stderr[-3000:]
