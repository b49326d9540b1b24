"""The bounds audit's memo on disk, kept between publishes and signed.

A block's audit is a function of the block (``bounds.Solved`` under ``_Block.fingerprint``), so a month's
publish need not solve again the blocks of quarters that did not change. But whoever could write an entry
could declare a disclosive block safe, so every entry carries an HMAC under a key derived from the
platform's master key (which lives outside the warehouse): an entry that does not verify is dropped and
its block solved again. The file holds fingerprints and interval widths of published numbers, nothing
about a person. Only the entries a publish used are written back, so the file stays the size of one
publish.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from pipelines.disclosure.bounds import Solved


class AuditMemo(MutableMapping[str, Solved]):
    """Verified entries of ``path`` (``rejected`` counts those that were not); :meth:`save` writes back
    the entries read or added since."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path, self._key = path, key
        self._entries: dict[str, Solved] = {}
        self._used: set[str] = set()
        self.rejected = 0
        try:
            stored = json.loads(path.read_text()) if path.exists() else {}
        except (ValueError, UnicodeDecodeError):  # not a file this module wrote: nothing in it counts
            stored, self.rejected = {}, 1
        for fingerprint, entry in stored.items() if isinstance(stored, dict) else ():
            solved = _solved(entry.get("solved")) if isinstance(entry, dict) else None
            if solved is not None and hmac.compare_digest(
                str(entry.get("mac")), self._mac(fingerprint, solved)
            ):
                self._entries[fingerprint] = solved
            else:
                self.rejected += 1

    def __getitem__(self, fingerprint: str) -> Solved:
        solved = self._entries[fingerprint]
        self._used.add(fingerprint)
        return solved

    def __setitem__(self, fingerprint: str, solved: Solved) -> None:
        self._entries[fingerprint] = solved
        self._used.add(fingerprint)

    def __delitem__(self, fingerprint: str) -> None:
        del self._entries[fingerprint]
        self._used.discard(fingerprint)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def save(self) -> None:
        """Write the entries used since loading, signed, whole (a reader never sees half a file)."""
        kept = {
            f: {"solved": _plain(self._entries[f]), "mac": self._mac(f, self._entries[f])}
            for f in sorted(self._used)
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(kept))
        os.replace(tmp, self.path)

    def _mac(self, fingerprint: str, solved: Solved) -> str:
        text = json.dumps([fingerprint, _plain(solved)], sort_keys=True)
        return base64.urlsafe_b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest()).decode()


def _plain(solved: Solved) -> dict:
    return {
        "narrow": [[i, low, high, list(binding)] for i, low, high, binding in solved.narrow],
        "widths": list(solved.widths),
        "solves": solved.solves,
        "inconsistent": solved.inconsistent,
    }


def _solved(plain: object) -> Solved | None:
    """The entry as written by ``_plain``, or None if it is not of that shape."""
    try:
        return Solved(
            narrow=tuple(
                (int(i), float(lo), float(hi), tuple(int(r) for r in b)) for i, lo, hi, b in plain["narrow"]
            ),
            widths=tuple(float(w) for w in plain["widths"]),
            solves=int(plain["solves"]),
            inconsistent=str(plain["inconsistent"]),
        )
    except (TypeError, KeyError, ValueError):
        return None
