"""The installed ``knutpunkt`` works from any folder, not only from the repository root where pytest runs.

pytest puts the repository on ``sys.path``, so an import that works only there (a package missing from
pyproject's package list) passes every other test; these run the console script as a user does.
"""

import os
import subprocess
from pathlib import Path

from pipelines.settings import REPO_ROOT
from tests.conftest import KNUTPUNKT


def _outside(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"KNUTPUNKT_HOME": str(tmp_path / "home"), "KNUTPUNKT_KEY_FILE": str(tmp_path / "key")}
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_every_top_level_package_is_installed(tmp_path):
    packages = sorted(
        p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"
    )
    assert {"pipelines", "warehouse", "synthetic", "dashboards"} <= set(packages)
    python = str(KNUTPUNKT.with_name("python"))
    done = _outside(
        tmp_path, python, "-c", f"import importlib; [importlib.import_module(p) for p in {packages}]"
    )
    assert done.returncode == 0, done.stderr


def test_dashboards_command_answers_from_outside_the_repository(tmp_path):
    done = _outside(tmp_path, str(KNUTPUNKT), "dashboards", "serve", "--port", "1")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1 and "not deployed yet" in done.stderr
