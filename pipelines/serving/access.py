"""Who may read the serving folder: the platform user, and the serving group if the machine has one.

Standard library only: Superset's environment imports it too (``dashboards/isolation.py``). The
serving folder is the only part of the platform home the dashboards and notebooks need, so it is
the only part the serving group (the separate service user Superset runs as) is let into:
``warehouse/serving`` and its ``snapshots`` folder 0750, each snapshot 0640, group
``knutpunkt-serving``. Without that group (a developer's machine) they are 0700 and 0600. Either
way no other user reads a snapshot.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path

SERVING_GROUP = "knutpunkt-serving"  # also the name of the service user Superset runs as


def serving_gid() -> int | None:
    """The serving group's id, if it exists and this process may give files to it."""
    try:
        gid = grp.getgrnam(SERVING_GROUP).gr_gid
    except KeyError:
        return None
    return gid if os.geteuid() == 0 or gid in os.getgroups() else None


def restrict(path: Path, gid: int | None = None) -> None:
    """Owner full access, the serving group read (and traverse), others nothing."""
    is_dir = path.is_dir()
    if gid is None:
        os.chmod(path, 0o700 if is_dir else 0o600)
        return
    os.chown(path, -1, gid)
    os.chmod(path, 0o750 if is_dir else 0o640)
