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

The service user must be able to run Python. When the Superset venv's base interpreter lies in a
folder only root may enter (pyenv under ``/root``, as on this project's CI machines), that base
installation (its standard library, not its site-packages) is copied once to
``/opt/knutpunkt-serving/`` and gunicorn runs on the copy, with ``.venv-superset``'s packages on its
path: the same Python version and build, nothing new installed.

As another user (a developer's machine) none of this is possible without root: Superset runs as
that user, a warning says so, and the connection hooks are the protection.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dashboards.home import REPO_ROOT, SUPERSET_VENV, SupersetHome
from pipelines.serving.access import SERVING_GROUP, restrict

SERVICE_USER = SERVING_GROUP
SERVER_SECRETS = ("secret_key", "async_jwt_secret")  # what superset_config reads, by env name
OPEN_TO_GROUP = ("warehouse", "superset")  # entries of the home the service user passes into
RUNTIME_ROOT = Path("/opt/knutpunkt-serving")  # a copy of the base Python, if root's is out of reach


class IsolationError(RuntimeError):
    """The service user could not be given the serving folder alone: nothing is started."""


@dataclass(frozen=True)
class ServiceUser:
    uid: int
    gid: int


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
    user = ensure_service_user()
    lock_down(home, user)
    python, python_env = service_python(user)
    env |= server_secrets(home) | python_env | {"HOME": str(home.root), "SUPERSET_HOME": str(home.root)}
    return Launch(user, env, python)


def service_python(user: ServiceUser) -> tuple[Path, dict[str, str]]:
    """A Python with Superset's packages that the service user can run, and the environment it needs.

    The repository (Superset's config, the venv's packages) must be reachable: a private folder of
    root's above it (a checkout under ``/root``) gets pass-through for the serving group only."""
    venv_python = SUPERSET_VENV / "bin" / "python"
    _reachable_ancestors(REPO_ROOT / "dashboards", user.gid)
    if not _reachable(SUPERSET_VENV / "lib", user.gid):
        raise IsolationError(f"{SUPERSET_VENV} is not readable by the group {SERVING_GROUP}")
    base = Path(os.path.realpath(venv_python))
    prefix = base.parent.parent
    if _reachable(base, user.gid) and _reachable(prefix / "lib", user.gid):
        return venv_python, {}
    runtime = _copied_runtime(prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    packages = SUPERSET_VENV / "lib" / version / "site-packages"
    return runtime / "bin" / base.name, {
        "LD_LIBRARY_PATH": str(runtime / "lib"),  # the base's RUNPATH points into the original
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{packages}",
        "PYTHONNOUSERSITE": "1",
    }


def _copied_runtime(prefix: Path) -> Path:
    """The base Python installation without its site-packages, copied once (0755, root's)."""
    digest = hashlib.sha256(str(prefix).encode()).hexdigest()[:10]
    runtime = RUNTIME_ROOT / f"python-{prefix.name}-{digest}"
    if (runtime / ".complete").exists():
        return runtime
    RUNTIME_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=RUNTIME_ROOT, prefix=".copy-"))
    skip = shutil.ignore_patterns("site-packages", "test", "tests", "__pycache__")
    shutil.copytree(prefix, staging / "python", symlinks=True, ignore=skip)
    (staging / "python" / ".complete").touch()
    os.chmod(staging / "python", 0o755)
    with contextlib.suppress(OSError):  # another process finished the same copy first
        os.replace(staging / "python", runtime)
    shutil.rmtree(staging, ignore_errors=True)
    return runtime


def _reachable(path: Path, gid: int) -> bool:
    """Whether a member of group ``gid`` who owns nothing can reach (and read) ``path``."""
    for folder in [*reversed(path.parents), path]:
        info = folder.stat()
        mode, mine = stat.S_IMODE(info.st_mode), info.st_gid == gid
        if not (mode & 0o001 or (mine and mode & 0o010)):
            return False
        if folder == path and not (mode & 0o004 or (mine and mode & 0o040)):
            return False
    return True


def ensure_service_user() -> ServiceUser:
    """The system user and group ``knutpunkt-serving``, created (no home, no shell) if missing."""
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True, check=False,
        )  # fmt: skip
        entry = pwd.getpwnam(SERVICE_USER)  # KeyError here: useradd failed (and says why above)
    return ServiceUser(entry.pw_uid, grp.getgrnam(SERVING_GROUP).gr_gid)


def lock_down(home: SupersetHome, user: ServiceUser) -> None:
    """Give the service user the serving folder and Superset's state, and nothing else of the home."""
    platform, warehouse = home.platform_home, home.platform_home / "warehouse"
    _reachable_ancestors(platform, user.gid)
    for folder in (platform, warehouse):
        _pass_through(folder, user.gid)
        for entry in folder.iterdir():
            if entry.name not in OPEN_TO_GROUP and entry.name != "serving":
                _private(entry)
    serving = warehouse / "serving"
    for path in [serving, *serving.rglob("*")]:
        if not path.is_symlink():
            restrict(path, user.gid)
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


def drop_privileges(user: ServiceUser) -> None:
    """Become the service user for good (before exec): groups first, then group, then user."""
    os.setgroups([user.gid])
    os.setgid(user.gid)
    os.setuid(user.uid)


def _pass_through(folder: Path, gid: int) -> None:
    """The group may pass through the folder but not list it; others nothing."""
    os.chown(folder, -1, gid)
    os.chmod(folder, 0o710)


def _private(entry: Path) -> None:
    """No access for group or others (enough: nothing below is reachable for them then)."""
    if entry.is_symlink():
        return
    os.chmod(entry, stat.S_IMODE(entry.stat().st_mode) & 0o700)


def _reachable_ancestors(platform: Path, gid: int) -> None:
    """Every folder above ``platform`` (the home, the repository) must let the service user pass.

    A folder that lets nobody else in (group and others have no bits, e.g. a 0700 temporary folder)
    is given to the group with pass-through only; anything else is the administrator's to decide.
    """
    for folder in reversed(platform.parents):
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o001 or (mode & 0o010 and folder.stat().st_gid == gid):
            continue
        if mode & 0o077 == 0 and folder.stat().st_uid == os.geteuid():
            os.chown(folder, -1, gid)
            os.chmod(folder, mode | 0o010)
            continue
        raise IsolationError(
            f"{folder} ({oct(mode)}) does not let the service user {SERVICE_USER} reach the serving "
            f"folder under {platform}: give the group {SERVING_GROUP} pass-through (g+x) on it"
        )
