"""Independent random streams, one per named part of the generator.

Every part (population, each service, defects of each file, ...) draws from its
own numpy Generator derived from the seed and a stable name. Two properties
follow: the same seed and arguments give the same files, and changing one part
(for example the defect rate) does not shift the random numbers of any other,
so a municipality with defects is the clean municipality plus the defects.
"""

from __future__ import annotations

import zlib

import numpy as np


def child_rng(seed: int, *names: str | int) -> np.random.Generator:
    """A Generator determined by the seed and the names (strings are hashed with CRC-32)."""
    keys = [int(seed)] + [zlib.crc32(n.encode()) if isinstance(n, str) else int(n) for n in names]
    return np.random.default_rng(keys)
