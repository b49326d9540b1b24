"""Where Superset's state lives and how its generated credentials are kept (standard library only).

Superset's metadata (SQLite) is under ``$KNUTPUNKT_HOME/superset``. Its secrets are kept with the
platform's other secret, beside the pseudonymisation key file and so outside the repository
(``~/.config/knutpunkt/superset/`` by default): the generated secret keys and ``credentials.json``
(0600) with the admin's and each förvaltning manager's generated password. No default password exists
anywhere; whoever needs to log in reads that file.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The platform's own answers to "where is the home" and "where are the secrets": both modules use the
# standard library only, so Superset's environment can import them (tests/test_dashboards.py runs it).
from pipelines.border.keys import KEY_ENV, key_file_path, write_private
from pipelines.settings import REPO_ROOT, Paths
from pipelines.workbench.accounts import username

SUPERSET_VENV = REPO_ROOT / ".venv-superset"
CONFIG = REPO_ROOT / "dashboards" / "superset_config.py"
BUNDLE = REPO_ROOT / "dashboards" / "bundle"
DEFAULT_PORT = 8088
SECRETS_ENV = "KNUTPUNKT_SUPERSET_SECRETS"


@dataclass(frozen=True)
class SupersetHome:
    """Superset's folder under a platform home."""

    platform_home: Path
    secrets: Path  # secret keys and credentials.json: beside the key file, outside the repository

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SupersetHome:
        folder = env.get(SECRETS_ENV) or key_file_path(env).parent / "superset"
        return cls(Paths.from_env(env).home, Path(folder).resolve())

    @property
    def root(self) -> Path:
        return self.platform_home / "superset"

    @property
    def credentials(self) -> Path:
        return self.secrets / "credentials.json"

    @property
    def serving(self) -> Path:
        """The symlink to the current snapshot: Superset's only analytics database."""
        return self.platform_home / "warehouse" / "serving" / "current.duckdb"

    def env(self) -> dict[str, str]:
        """Environment for every Superset process: its config, and the platform home it reads.

        Without the pseudonym key: no Superset process needs it, and a process's environment is
        readable by its own user.
        """
        inherited = {k: v for k, v in os.environ.items() if k != KEY_ENV}
        return inherited | {
            "SUPERSET_CONFIG_PATH": str(CONFIG),
            "KNUTPUNKT_HOME": str(self.platform_home),
            SECRETS_ENV: str(self.secrets),
            "PYTHONPATH": str(REPO_ROOT),
            "FLASK_APP": "superset.app:create_app()",
            "SUPERSET_LOAD_EXAMPLES": "no",
        }

    def read_credentials(self) -> dict:
        return json.loads(self.credentials.read_text())

    def ensure_credentials(self, forvaltningar: list[str]) -> dict:
        """Generate the admin's and each manager's password once; keep existing ones."""
        creds = self.read_credentials() if self.credentials.exists() else {}
        creds.setdefault("admin", {"username": "admin", "password": secrets.token_urlsafe(18)})
        managers = creds.setdefault("managers", {})
        for forvaltning in forvaltningar:
            managers.setdefault(
                forvaltning,
                {"username": manager_username(forvaltning), "password": secrets.token_urlsafe(18)},
            )
        write_private(self.credentials, json.dumps(creds, indent=2, ensure_ascii=False))
        return creds


def manager_username(forvaltning: str) -> str:
    """'Vård- och omsorgsförvaltningen' -> 'chef.vard-och-omsorgsforvaltningen' (ASCII, stable), made
    as the workbench makes a steward's username."""
    return "chef." + username(forvaltning)


def role_name(forvaltning: str) -> str:
    return f"Chef {forvaltning}"
