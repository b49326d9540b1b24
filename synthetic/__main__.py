"""Command line: python -m synthetic --out DIR --citizens N --years Y --seed S --defect-rate R."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from synthetic.generate import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m synthetic", description="Generate a synthetic municipality."
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output directory (landing/ and ground_truth/)"
    )
    parser.add_argument("--citizens", type=int, default=10_000, help="residents at the start (default 10000)")
    parser.add_argument("--years", type=int, default=3, help="years of monthly deliveries (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--defect-rate", type=float, default=0.002, help="row defect rate per type (default 0.002)"
    )
    parser.add_argument(
        "--end-month", default="2025-12", help="last delivery month YYYY-MM (default 2025-12)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    summary = generate(
        args.out,
        citizens=args.citizens,
        years=args.years,
        seed=args.seed,
        defect_rate=args.defect_rate,
        end_month=args.end_month,
        progress=not args.no_progress,
    )
    console = Console()
    console.print(summary.table())
    size_mb = sum(summary.bytes.values()) / 1e6
    console.print(f"{summary.files} files, {size_mb:.1f} MB, in {summary.seconds:.1f} s")
    console.print("defects: " + ", ".join(f"{k} {v}" for k, v in summary.defects.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
