"""Service users: system users that reach a platform home's serving snapshot and nothing else of it.

When the platform runs as root (the demo, a CI machine), what reads the serving snapshot on behalf
of others runs as a system user of its own:

- ``knutpunkt-serving``: Superset's web server (``dashboards/isolation.py``). Its group is the
  serving group the snapshots are readable by (``access.py``);
- ``knutpunkt-analyst``: the analysts' notebook kernels (``kernel.py``), a member of the serving
  group, so it reads the snapshots, but not Superset's state (``$KNUTPUNKT_HOME/superset``, 0700 to
  ``knutpunkt-serving``: users, roles, row-level security) and not Superset's processes (their
  environment holds Superset's secret keys).

This module creates them (``ensure``), lays the platform home out so that the serving group reaches
only the serving folder (``lay_out_home``), and finds a Python such a user can run
(``service_python``). Standard library only: Superset's environment imports it too.
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
from dataclasses import dataclass
from pathlib import Path

from pipelines.serving.access import SERVING_GROUP, restrict
from pipelines.settings import REPO_ROOT, Paths

SERVING_USER = SERVING_GROUP  # Superset's user; its own group is the serving group
ANALYST_USER = "knutpunkt-analyst"  # notebook kernels; a member of the serving group
OPEN_TO_GROUP = ("warehouse", "superset")  # entries of the home the serving group may pass into
RUNTIME_ROOT = Path("/opt/knutpunkt-serving")  # a copy of the base Python, if root's is out of reach


class IsolationError(RuntimeError):
    """A service user could not be given the serving folder alone: nothing is started."""


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int  # its own group
    groups: tuple[int, ...]  # every group it runs with: its own, and the serving group
    home: Path

    def subprocess_args(self) -> dict:
        """``subprocess.Popen`` arguments that start a process as this user."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def become(self) -> None:
        """Become this user for good (before exec): groups first, then group, then user."""
        os.setgroups(list(self.groups))
        os.setgid(self.gid)
        os.setuid(self.uid)


def ensure(name: str, member_of: tuple[str, ...] = (), home: Path | None = None) -> ServiceUser:
    """The system user ``name`` with a group of its own, created if missing (no shell), and a member
    of ``member_of``. ``home`` is created 0700 for it; without one its home is ``/nonexistent``."""
    home_dir = home or Path("/nonexistent")
    try:
        pwd.getpwnam(name)
    except KeyError:
        groups = ["--groups", ",".join(member_of)] if member_of else []
        subprocess.run(
            ["useradd", "--system", "--user-group", *groups, "--no-create-home", "--home-dir",
             str(home_dir), "--shell", "/usr/sbin/nologin", name],
            capture_output=True, check=False,
        )  # fmt: skip
    entry = pwd.getpwnam(name)  # KeyError here: useradd failed
    missing = [g for g in member_of if name not in grp.getgrnam(g).gr_mem]
    if missing:
        subprocess.run(["usermod", "--append", "--groups", ",".join(missing), name], check=True)
    others = tuple(grp.getgrnam(g).gr_gid for g in member_of)
    user = ServiceUser(name, entry.pw_uid, entry.pw_gid, (entry.pw_gid, *others), Path(entry.pw_dir))
    if home is not None:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(home, user.uid, user.gid)
        os.chmod(home, 0o700)
    return user


def serving_user() -> ServiceUser:
    """Superset's user ``knutpunkt-serving`` (and with it the serving group)."""
    return ensure(SERVING_USER)


def analyst_user() -> ServiceUser:
    """The notebook kernels' user ``knutpunkt-analyst``, in the serving group, with a home for IPython."""
    serving_user()  # the serving group must exist first
    return ensure(ANALYST_USER, member_of=(SERVING_GROUP,), home=Path("/var/lib") / ANALYST_USER)


def lay_out_home(platform: Path, gid: int) -> None:
    """Let group ``gid`` reach the serving folder of the platform home, and nothing else of it.

    The home and ``warehouse`` 0710 (pass through, no listing), ``warehouse/serving`` 0750 and its
    snapshots 0640, all group ``gid``; every other entry (landing, unit zones, vaults, the cross-unit
    zone, marts, Dagster) loses group and other access. ``superset`` keeps its mode: it is Superset's
    own, 0700 to its user.
    """
    if not platform.is_dir():
        return  # nothing published yet, nothing to protect
    warehouse = Paths(platform).warehouse
    reachable_ancestors(platform, gid)
    for folder in (platform, warehouse):
        if not folder.is_dir():
            continue
        _pass_through(folder, gid)
        for entry in folder.iterdir():
            if entry.name not in OPEN_TO_GROUP and entry.name != "serving":
                _private(entry)
    serving = warehouse / "serving"
    if serving.is_dir():
        for path in [serving, *serving.rglob("*")]:
            if not path.is_symlink():
                restrict(path, gid)


def service_python(venv: Path, gid: int) -> tuple[Path, dict[str, str]]:
    """A Python with ``venv``'s packages that a member of group ``gid`` can run, and the environment
    it needs.

    The repository (the platform's code, the venv's packages) must be reachable: a private folder of
    root's above it (a checkout under ``/root``) gets pass-through for the group. When the venv's
    base interpreter lies where only root may enter (pyenv under ``/root``), that base installation
    (its standard library, not its site-packages) is copied once to ``/opt/knutpunkt-serving/``: the
    same Python version and build, the venv's packages on ``PYTHONPATH``, nothing installed.
    """
    venv_python = venv / "bin" / "python"
    reachable_ancestors(REPO_ROOT / "pipelines", gid)
    if not _reachable(venv / "lib", gid):
        raise IsolationError(f"{venv} is not readable by the group {grp.getgrgid(gid).gr_name}")
    base = Path(os.path.realpath(venv_python))
    prefix = base.parent.parent
    if _reachable(base, gid) and _reachable(prefix / "lib", gid):
        return venv_python, {}
    runtime = _copied_runtime(prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    packages = venv / "lib" / version / "site-packages"
    return runtime / "bin" / base.name, {
        "LD_LIBRARY_PATH": str(runtime / "lib"),  # the base's RUNPATH points into the original
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{packages}",
        "PYTHONNOUSERSITE": "1",
    }


def reachable_ancestors(path: Path, gid: int) -> None:
    """Every folder above ``path`` must let a member of group ``gid`` pass.

    A folder that lets nobody else in (group and others have no bits, e.g. a 0700 temporary folder)
    is given to the group with pass-through only; anything else is the administrator's to decide.
    """
    for folder in reversed(path.parents):
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o001 or (mode & 0o010 and folder.stat().st_gid == gid):
            continue
        if mode & 0o077 == 0 and folder.stat().st_uid == os.geteuid():
            os.chown(folder, -1, gid)
            os.chmod(folder, mode | 0o010)
            continue
        name = grp.getgrgid(gid).gr_name
        raise IsolationError(
            f"{folder} ({oct(mode)}) does not let the group {name} reach {path}: give it "
            "pass-through (g+x) on it"
        )


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


def _pass_through(folder: Path, gid: int) -> None:
    """The group may pass through the folder but not list it; others nothing."""
    os.chown(folder, -1, gid)
    os.chmod(folder, 0o710)


def _private(entry: Path) -> None:
    """No access for group or others (enough: nothing below is reachable for them then)."""
    if entry.is_symlink():
        return
    os.chmod(entry, stat.S_IMODE(entry.stat().st_mode) & 0o700)
