"""Chart-data latency through Superset's API against the same SQL run directly on the snapshot in DuckDB.

For every chart: p50 and p95 of ``GET /api/v1/chart/<id>/data/`` as the admin, cold (``force=true``:
the query runs on the snapshot) and warm (a repeat view, answered by the chart cache keyed on the
snapshot, ``dashboards/cache.py``), and of the SQL Superset generates for it (``?type=query``) run on
``current.duckdb`` with a fresh read-only connection per query, as Superset's NullPool does. The
ratios are Superset's cost against that direct round trip, cold and warm. By default it generates a municipality, runs the main
job on it, deploys the dashboards and starts a server; ``--home`` reuses a platform home that has
run the main job.

    .venv/bin/python bench/dashboards.py --citizens 60000 --years 5
    .venv/bin/python bench/dashboards.py --citizens 1000000 --years 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import server  # noqa: E402
from dashboards.api import Superset  # noqa: E402
from dashboards.home import SupersetHome  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=60_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per chart and side")
    parser.add_argument("--home", type=Path, help="an existing platform home (skips generation and main job)")
    return parser.parse_args()


def percentiles(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds over ``repeat`` runs, after one warm-up run."""
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=20, method="inclusive")
    return statistics.median(times), cuts[18]


def direct(snapshot: Path, sql: str) -> Callable[[], object]:
    def run() -> object:
        con = duckdb.connect(str(snapshot), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    return run


def reused(con: duckdb.DuckDBPyConnection, sql: str) -> Callable[[], object]:
    return lambda: con.execute(sql).fetchall()


def main_job(home: Path, args: argparse.Namespace) -> None:
    env = os.environ | {"KNUTPUNKT_HOME": str(home), "KNUTPUNKT_KEY_FILE": str(home / "secrets" / "key")}
    command = [sys.executable, "-m", "pipelines.cli", "run", "--citizens", str(args.citizens)]
    command += ["--years", str(args.years), "--seed", str(args.seed)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(
        f"main job: {args.citizens:,} citizens x {args.years} years in {time.perf_counter() - started:.0f} s"
    )


def deploy(home: Path) -> None:
    env = os.environ | {"KNUTPUNKT_HOME": str(home)}
    command = [sys.executable, "-m", "pipelines.cli", "dashboards", "deploy"]  # as bin/demo deploys
    subprocess.run(command, env=env, check=True, capture_output=True)


def measure(url: str, home: SupersetHome, repeat: int) -> list[tuple]:
    cred = home.read_credentials()["admin"]
    api = Superset(url, cred["username"], cred["password"])
    snapshot = home.serving.resolve()
    rows = []
    for name, chart_id in sorted(api.charts().items()):
        sql = api.request("GET", f"/api/v1/chart/{chart_id}/data/?type=query").json()["result"][0]["query"]
        n = len(api.chart_data(chart_id))
        s50, s95 = percentiles(lambda chart_id=chart_id: api.chart_data(chart_id), repeat)
        w50, w95 = percentiles(lambda chart_id=chart_id: api.chart_data(chart_id, force=False), repeat)
        d50, d95 = percentiles(direct(snapshot, sql), repeat)
        rows.append([name, n, s50, s95, w50, w95, d50, d95, sql])
    # Only now hold a connection open: while one is open, duckdb.connect() on the same file in this
    # process reuses the open database instead of opening the file, which would hide that cost above.
    with duckdb.connect(str(snapshot), read_only=True) as con:
        for row in rows:
            row[8] = percentiles(reused(con, row[8]), repeat)[0]
    return [tuple(r) for r in rows]


def report(rows: list[tuple]) -> None:
    """Superset cold and warm against DuckDB with a connection per query (as Superset); the last column is
    the query alone on an open connection, to show how much of DuckDB's time is opening the file."""
    print(f"{'chart':<50} {'rows':>6} {'cold p50':>9} {'p95':>7} {'warm p50':>9} {'p95':>7} "
          f"{'DuckDB p50':>10} {'p95':>7} {'cold':>6} {'warm':>6} {'query only':>10}")  # fmt: skip
    for name, n, s50, s95, w50, w95, d50, d95, q50 in rows:
        print(f"{name[:50]:<50} {n:>6} {s50:>7.1f}ms {s95:>5.1f}ms {w50:>7.1f}ms {w95:>5.1f}ms "
              f"{d50:>8.1f}ms {d95:>5.1f}ms {s50 / d50:>5.1f}x {w50 / d50:>5.1f}x {q50:>8.1f}ms")  # fmt: skip
    median = [statistics.median(r[i] for r in rows) for i in range(2, 9)]
    s50, s95, w50, w95, d50, d95, q50 = median
    print(
        f"median over {len(rows)} charts: Superset cold p50 {s50:.1f} ms (p95 {s95:.1f}), warm p50 {w50:.1f} ms "
        f"(p95 {w95:.1f}), DuckDB p50 {d50:.1f} ms (p95 {d95:.1f}; query alone {q50:.1f} ms); "
        f"cold {s50 / d50:.1f}x, warm {w50 / d50:.1f}x the direct round trip"
    )


def main() -> None:
    args = arguments()
    work = None
    if args.home is None:
        work = Path(tempfile.mkdtemp(prefix="knutpunkt-bench-dashboards-"))
        args.home = work / "home"
        main_job(args.home, args)
    try:
        deploy(args.home)
        home = SupersetHome.from_env(os.environ | {"KNUTPUNKT_HOME": str(args.home.resolve())})
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = server.start(home, port, home.root / "bench-server.log")
        try:
            report(measure(f"http://127.0.0.1:{port}", home, args.repeat))
        finally:
            server.stop(proc)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
