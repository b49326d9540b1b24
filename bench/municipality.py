"""A generated municipality in a throwaway folder, shared by the benchmarks."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synthetic.generate import generate


def size_arguments(description: str, defect_rate: float, rounds: bool = False) -> argparse.Namespace:
    """--citizens/--years/--seed/--defect-rate, defaulting to a Norrtälje-sized municipality; with
    ``rounds``, --rounds: how many times to measure on the same landing (this machine is noisy)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--citizens", type=int, default=60_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--defect-rate", type=float, default=defect_rate)
    if rounds:
        parser.add_argument(
            "--rounds", type=int, default=1, help="measure N times, report each and the median"
        )
    return parser.parse_args()


@contextmanager
def generated(args: argparse.Namespace) -> Iterator[Path]:
    """Generate into a temporary folder (with its own key file), print how long it took, clean up after."""
    work = Path(tempfile.mkdtemp(prefix="knutpunkt-bench-"))
    os.environ.setdefault("KNUTPUNKT_KEY_FILE", str(work / "secrets" / "pseudonym.key"))
    try:
        started = time.perf_counter()
        generate(
            work,
            citizens=args.citizens,
            years=args.years,
            seed=args.seed,
            defect_rate=args.defect_rate,
            progress=False,
        )
        print(
            f"generated {args.citizens:,} citizens x {args.years} years in {time.perf_counter() - started:.1f} s"
        )
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
