"""The analysts' Jupyter kernel ``knutpunkt``: Python that reaches the serving snapshot and nothing else.

The notebooks read only the snapshot (``notebooks/knutpunkt_notebook.py``), but a kernel runs
whatever an analyst types. So the kernelspec (``install``) starts this module, not the kernel, and
when the platform runs as root it

1. creates the system user ``knutpunkt-analyst`` if missing, a member of the serving group
   (``service_users``): it reads the snapshots like Superset does, but not Superset's metadata or
   Superset's processes, which a kernel running as ``knutpunkt-serving`` could;
2. lays out the platform home as for Superset: the serving folder readable by the group, landing,
   unit zones, vaults, the cross-unit zone, marts and Dagster private to the platform user;
3. copies Jupyter's connection file (in the launching user's private runtime folder) into the
   analyst's home, readable by the analyst only;
4. execs ``ipykernel`` as the analyst (which removes the copy once read), with a Python it can run
   (``.venv``'s packages) and an environment of an allow-list: ``KNUTPUNKT_HOME`` and what Python
   and Jupyter need, never the key file's path or the pseudonym key.

Not as root, the kernel runs as the current user with a warning, without the key variables in its
environment; it could still read whatever that user can.

``python -m pipelines.serving.kernel install`` (or ``knutpunkt notebooks kernel install``, bin/setup
runs it) writes the kernelspec into this virtualenv's ``share/jupyter/kernels``, where Jupyter finds
it when started from the venv.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import sys
from pathlib import Path

from pipelines.border.keys import KEY_ENV, KEY_FILE_ENV
from pipelines.serving import service_users
from pipelines.settings import HOME_ENV, Paths

KERNEL_NAME = "knutpunkt"
DISPLAY_NAME = "Knutpunkt (serving snapshot only)"
KEPT_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")  # plus JPY_* (Jupyter's own)
SECRET_ENV = (KEY_FILE_ENV, KEY_ENV)  # never passed to a kernel
# ipykernel_launcher, except that the kernel removes its copy of the connection file once it has read
# it (ipykernel removes only a file it wrote itself).
BOOT = """import os, sys
del sys.path[0]  # the '' of -c; the kernel adds its working folder itself
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
app.initialize(sys.argv[1:])
os.unlink(app.abs_connection_file)
app.start()
"""


def kernelspec() -> dict:
    return {
        "argv": [sys.executable, "-m", "pipelines.serving.kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": False},
    }


def install(prefix: Path = Path(sys.prefix)) -> Path:
    """Write the kernelspec into ``<prefix>/share/jupyter/kernels/knutpunkt`` (idempotent)."""
    folder = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / "kernel.json.tmp"
    staged.write_text(json.dumps(kernelspec(), indent=1) + "\n")
    staged.replace(folder / "kernel.json")
    return folder


def launch(connection_file: Path) -> None:
    """Replace this process with the kernel: as the analyst user when root, else as this user."""
    home = Paths.from_env().home
    if os.geteuid() != 0:
        print(
            f"warning: not root, so this notebook kernel runs as {pwd.getpwuid(os.geteuid()).pw_name} "
            "and can read what that user can (landing files, the key file, the unit zones); only the "
            "notebook helper keeps to the serving snapshot. Run Jupyter as root, or as a member of the "
            "serving group only, for the separate analyst user (notebooks/README.md).",
            file=sys.stderr,
        )
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV} | {HOME_ENV: str(home)}
        command = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file)]
        os.execve(command[0], command, env)
    try:
        user = service_users.analyst_user()
        service_users.lay_out_home(home, user.gid)
        python, python_env = service_users.service_python(Path(sys.prefix), user.gid)
        own = _hand_over(connection_file, user)
    except service_users.IsolationError as e:
        sys.exit(f"Not starting the kernel: {e}")
    env = kernel_env(os.environ, home, user) | python_env
    command = [str(python), "-c", BOOT, "-f", str(own)]
    os.umask(0o077)
    user.become()
    os.execve(command[0], command, env)


def kernel_env(inherited: dict[str, str], home: Path, user: service_users.ServiceUser) -> dict[str, str]:
    """The isolated kernel's whole environment: an allow-list, so nothing secret is inherited."""
    kept = {k: v for k, v in inherited.items() if k in KEPT_ENV or k.startswith("JPY_")}
    return kept | {
        HOME_ENV: str(home),
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "IPYTHONDIR": str(user.home / ".ipython"),
        "MPLCONFIGDIR": str(user.home / ".matplotlib"),
    }


def _hand_over(connection_file: Path, user: service_users.ServiceUser, runtime: Path | None = None) -> Path:
    """A copy of the connection file the analyst alone can read, in ``runtime/`` of its home.

    The analyst owns that home and could put a symlink where root writes: the folder is opened
    without following one, and the file created in it by descriptor."""
    runtime = runtime or user.home / "runtime"
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(runtime, 0o700)
        folder = os.open(runtime, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        raise service_users.IsolationError(f"{runtime} is not a folder of {user.name}'s: {e}") from e
    try:
        if os.fstat(folder).st_uid not in (0, user.uid):
            raise service_users.IsolationError(f"{runtime} belongs to someone else")
        os.fchown(folder, user.uid, user.gid)
        os.fchmod(folder, 0o700)
        with contextlib.suppress(FileNotFoundError):  # a restart reuses the connection file's name
            os.unlink(connection_file.name, dir_fd=folder)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(connection_file.name, flags, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as out:
            os.fchown(fd, user.uid, user.gid)
            out.write(connection_file.read_bytes())
    finally:
        os.close(folder)
    return runtime / connection_file.name


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    match args:
        case ["install"]:
            print(f"Kernel {KERNEL_NAME!r} ({DISPLAY_NAME}) installed in {install()}")
            return 0
        case ["-f", connection_file]:
            launch(Path(connection_file).resolve())
    print("usage: python -m pipelines.serving.kernel install | -f CONNECTION_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
