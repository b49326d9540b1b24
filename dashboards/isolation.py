"""Run Superset as a separate service user that can read the serving snapshot and nothing else.

Superset's connection hooks (``superset_config.py``) keep SQL away from files; this is the layer
under them, for a bug or a Python-level hole in Superset: when the platform runs as root (the demo,
a CI machine), the web server runs as the system user ``knutpunkt-serving`` (created if missing),
and the platform home is laid out so that user reaches only

- the serving folder (``warehouse/serving``, 0750, snapshots 0640, group ``knutpunkt-serving``),
- Superset's own state (``$KNUTPUNKT_HOME/superset``, owned by the service user, 0700),

while the home and ``warehouse`` let the group only pass through (0710) and every other entry
(landing files, unit zones, vaults, the cross-unit zone, marts, Dagster's storage) is 0700/0600 to
the platform user. The key file and Superset's secrets stay where they are (0600); the server gets
its two secret keys in its environment from the starting process. The pseudonym key never reaches
a Superset process (``SupersetHome.env``).

The service user must be able to run Python: ``.venv-superset``'s, or a copy of its base
installation when that lies where only root may enter. Creating the user, the home's layout and the
Python are shared with the analysts' notebook kernel (``pipelines/serving/service_users.py``).

As another user (a developer's machine) none of this is possible without root: Superset runs as
that user, a warning says so, and the connection hooks are the protection.
"""

from __future__ import annotations

import os
import pwd
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dashboards.home import SUPERSET_VENV, SupersetHome
from pipelines.serving import service_users
from pipelines.serving.service_users import IsolationError, ServiceUser

SERVICE_USER = service_users.SERVING_USER
SERVER_SECRETS = ("secret_key", "async_jwt_secret")  # what superset_config reads, by env name


@dataclass(frozen=True)
class Launch:
    """How to start Superset's server: as whom, with which Python, in which environment."""

    user: ServiceUser | None  # None: as the current user
    env: dict[str, str]
    python: Path = field(default=SUPERSET_VENV / "bin" / "python")


def prepare(home: SupersetHome) -> Launch:
    """How to run Superset: as the service user when root (laying out the home), else as this user."""
    env = home.env()
    if os.geteuid() != 0:
        print(
            f"warning: not root, so Superset runs as {pwd.getpwuid(os.geteuid()).pw_name} and could read "
            "what that user can (landing files, the key file); only its connection hooks keep SQL away "
            "from files. Install as root for the separate service user (dashboards/README.md).",
            file=sys.stderr,
        )
        return Launch(None, env)
    user = service_users.serving_user()
    lock_down(home, user)
    python, python_env = service_users.service_python(SUPERSET_VENV, user.gid)
    env |= server_secrets(home) | python_env | {"HOME": str(home.root), "SUPERSET_HOME": str(home.root)}
    return Launch(user, env, python)


def lock_down(home: SupersetHome, user: ServiceUser) -> None:
    """Give the service user the serving folder and Superset's state, and nothing else of the home."""
    service_users.lay_out_home(home.platform_home, user.gid)
    home.root.mkdir(parents=True, exist_ok=True)
    for path in [home.root, *home.root.rglob("*")]:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)
    os.chmod(home.root, 0o700)


def server_secrets(home: SupersetHome) -> dict[str, str]:
    """Superset's secret keys, read here so the service user needs no access to the secrets folder."""
    missing = [n for n in SERVER_SECRETS if not (home.secrets / n).exists()]
    if missing:
        raise IsolationError(
            f"{', '.join(missing)} missing in {home.secrets}: run `knutpunkt dashboards deploy`"
        )
    return {f"KNUTPUNKT_SUPERSET_{n.upper()}": (home.secrets / n).read_text().strip() for n in SERVER_SECRETS}
