"""Start and stop Superset's web server (gunicorn) without importing Superset.

gunicorn runs in its own process group so that stopping it stops its workers too (a stray worker
would keep serving, and holding memory, after the parent died). Started as root, it runs as the
service user ``knutpunkt-serving`` (``isolation.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from dashboards import isolation
from dashboards.home import SUPERSET_VENV, SupersetHome


def gunicorn_command(
    port: int, workers: int = 2, python: Path = SUPERSET_VENV / "bin" / "python"
) -> list[str]:
    """gunicorn as the stack notes verified it: threads, no control socket, loopback only."""
    return [
        str(python),
        *("-m", "gunicorn"),
        *("-w", str(workers), "-k", "gthread", "--threads", "4", "--no-control-socket"),
        *("--timeout", "120", "-b", f"127.0.0.1:{port}"),
        "superset.app:create_app()",
    ]


def start(home: SupersetHome, port: int, log: Path) -> subprocess.Popen:
    """Start gunicorn in a new process group, return once /health answers (or raise with the log)."""
    launch = isolation.prepare(home)
    user = launch.user
    log.parent.mkdir(parents=True, exist_ok=True)
    as_user = user.subprocess_args() if user else {}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            gunicorn_command(port, python=launch.python),
            env=launch.env, stdout=out, stderr=out, start_new_session=True, cwd="/", **as_user,
        )  # fmt: skip
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc)
    except Exception:
        stop(proc)
        raise
    return proc


def wait_until_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"Superset exited with {proc.returncode} before it was ready")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"Superset did not answer {url}/health within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop gunicorn and its workers by process group: TERM, then KILL after 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
