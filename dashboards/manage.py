"""``knutpunkt dashboards deploy|serve`` inside .venv-superset (the pipeline's venv never imports Superset).

deploy: metadata, users, bundle and row-level security (see ``dashboards/deploy.py``).
serve:  Superset's web server (gunicorn) in the foreground on 127.0.0.1; Ctrl-C stops it. As root it
        runs as the service user ``knutpunkt-serving`` (``dashboards/isolation.py``).
"""

from __future__ import annotations

import argparse
import os
import sys

from dashboards import isolation
from dashboards.home import DEFAULT_PORT, SupersetHome
from dashboards.server import gunicorn_command


def serve(home: SupersetHome, port: int) -> int:
    """Replace this process with gunicorn, so Ctrl-C or a signal reaches the server and its workers."""
    if not home.credentials.exists():
        print("Dashboards are not deployed yet: run `knutpunkt dashboards deploy` first.", file=sys.stderr)
        return 1
    try:
        launch = isolation.prepare(home)
    except isolation.IsolationError as e:
        print(f"Not serving: {e}", file=sys.stderr)
        return 1
    print(f"Superset: http://127.0.0.1:{port}/  (Ctrl-C stops it)")
    if launch.user:
        print(f"Superset runs as {isolation.SERVICE_USER}: it reads the serving snapshot and nothing else")
    print(f"Log in with the admin (or a förvaltning manager) from {home.credentials}")
    sys.stdout.flush()
    command = gunicorn_command(port, python=launch.python)
    if launch.user:
        os.chdir("/")  # the service user may not enter the folder serve was started in
        launch.user.become()
    os.execve(command[0], command, launch.env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="knutpunkt dashboards", description=__doc__)
    parser.add_argument("action", choices=("deploy", "serve"))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    home = SupersetHome.from_env()
    if args.action == "deploy":
        os.environ.update(home.env())  # Superset reads its config path from the environment
        from dashboards.deploy import main as deploy

        return deploy()
    return serve(home, args.port)


if __name__ == "__main__":
    sys.exit(main())
