"""The stewardship audit log: append-only JSON lines, each entry hashing the one before it.

Who approved, revoked, published, withdrew, exported or deleted what, when,
under which contract version. Entry n stores the hash of entry n-1 and its own
hash over its content, so editing, deleting or inserting an entry breaks the
chain; a separate head file (last sequence number and hash) catches a deleted
tail. Neither stops whoever can write this folder from rebuilding the log, so two
things do not live here: every approval and revocation is signed with its
steward's key (``signing``), and every decision and every link materialisation
records the head in an anchor store outside this folder (:class:`AnchorStore`:
Dagster's event log), which the sharing gate reads back (:func:`verify_anchored`):
a log that lost or rewrote an anchored entry, or that holds decisions while
Dagster holds no head, shares nothing. The
log never holds person-level data: only dataset names, contract versions, counts
and the people who decided.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pipelines.settings import Paths
from pipelines.stewardship import signing

GENESIS = "0" * 64
ACTIONS = ("approve", "revoke", "expire", "publish", "withdraw", "export", "retention")
DECISIONS = ("approve", "revoke")  # what a steward signs
SYSTEM = "knutpunkt"  # the actor of what the platform does by itself (publish, withdraw, retention)
FREE_TEXT = ("steward", "purpose", "reason", "note")  # what people type; checked for personnummer
_PERSONNUMMER_LIKE = re.compile(r"\d{6,8}[-+]?\d{4}")


class Refused(ValueError):
    """A decision refused by a rule, with a ``code`` a user interface can word in its own language."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AuditError(RuntimeError):
    """The audit log does not verify: it was edited, truncated or extended outside Knutpunkt."""


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    actor: str
    os_user: str
    action: str
    dataset: str | None
    contract_version: str | None
    details: dict
    prev: str
    hash: str
    signature: dict | None = None  # a steward's decision: {"key": steward id, "sig": Ed25519 hex}

    def body(self) -> dict:
        """What the hash covers: everything but the hash (an unsigned entry has no signature field)."""
        return {k: v for k, v in self.as_json().items() if k != "hash"}

    def signed(self) -> bytes:
        """What the steward signed: the body without the signature."""
        return canonical({k: v for k, v in self.body().items() if k != "signature"})

    def as_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not (k == "signature" and v is None)}


def folder(paths: Paths | None = None) -> Path:
    """``$KNUTPUNKT_HOME/stewardship``: never inside the repository."""
    return (paths or Paths.from_env()).stewardship


def log_path(paths: Paths | None = None) -> Path:
    return folder(paths) / "audit.jsonl"


def head_path(paths: Paths | None = None) -> Path:
    return folder(paths) / "audit.head"


def canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def entry_hash(body: dict) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def record(
    action: str,
    *,
    actor: str = SYSTEM,
    dataset: str | None = None,
    contract_version: str | None = None,
    details: dict | None = None,
    paths: Paths | None = None,
    sign: Callable[[bytes], dict] | None = None,
) -> Entry:
    """Append one entry under an exclusive lock (several processes may write), after verifying the chain.

    ``sign`` (a steward's decision) signs the entry as it will stand in the log, position included.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    details = details or {}
    _refuse_personnummer(actor, *(str(details.get(k, "")) for k in FREE_TEXT))
    with _locked(paths):
        entries = verify(paths)
        prev = entries[-1].hash if entries else GENESIS
        body = {
            "seq": len(entries) + 1,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "actor": actor,
            "os_user": _os_user(),
            "action": action,
            "dataset": dataset,
            "contract_version": contract_version,
            "details": details,
            "prev": prev,
        }
        if sign is not None:
            body["signature"] = sign(canonical(body))
        entry = Entry(**body, hash=entry_hash(body))
        with log_path(paths).open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry.as_json(), sort_keys=True, ensure_ascii=True) + "\n")
        tmp = head_path(paths).with_suffix(".tmp")
        tmp.write_text(f"{entry.seq} {entry.hash}\n")
        tmp.replace(head_path(paths))
    return entry


def read(paths: Paths | None = None) -> list[Entry]:
    """Entries as written, without verifying (``verify`` checks them)."""
    path = log_path(paths)
    if not path.exists():
        return []
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entries.append(Entry(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as e:
            raise AuditError(f"line {n} of {path} is not an audit entry ({e})") from None
    return entries


def verify(paths: Paths | None = None) -> list[Entry]:
    """Return the entries if the chain and the head hold; raise AuditError naming the first break."""
    entries, prev = read(paths), GENESIS
    for n, e in enumerate(entries, start=1):
        if e.seq != n:
            raise AuditError(
                f"line {n}: sequence number {e.seq}, expected {n} (an entry was deleted or inserted)"
            )
        if e.prev != prev:
            raise AuditError(
                f"entry {n}: does not follow entry {n - 1} (an entry before it was changed or removed)"
            )
        if entry_hash(e.body()) != e.hash:
            raise AuditError(f"entry {n}: content does not match its hash (the entry was edited)")
        if e.action in DECISIONS:
            try:
                signing.check(e.details.get("steward", e.actor), e.signature, e.signed())
            except signing.SignatureError as bad:
                raise AuditError(f"entry {n} ({e.action} {e.dataset}): {bad}") from None
        prev = e.hash
    head = head_path(paths)
    seq, last = _head(head)
    if (seq, last) in _ends(entries):
        return entries
    if seq == 0:
        raise AuditError(f"{head} is missing while the log has {len(entries)} entries")
    raise AuditError(
        f"the log ends at entry {len(entries)} but its head says {seq} (entries were removed or appended "
        "outside Knutpunkt)"
    )


def _head(head: Path) -> tuple[int, str]:
    """The head file's sequence number and hash; (0, GENESIS) before the first entry."""
    if not head.exists():
        return 0, GENESIS
    seq, _, last = head.read_text().strip().partition(" ")
    return int(seq), last


def _ends(entries: list[Entry]) -> set[tuple[int, str]]:
    """The heads a whole log may have: its last entry's, or the one before it. ``record`` appends the entry
    and then moves the head, so a writer killed between the two leaves the head one entry behind; that
    entry has passed every check of the chain, and a head behind by more, or ahead, is still caught. (The
    head guards against a lost tail; whoever can append to the log can also rewrite the head, which is
    why decisions are signed and heads anchored outside the folder.)"""
    hashes = [GENESIS] + [e.hash for e in entries]
    return {(n, hashes[n]) for n in (len(entries), len(entries) - 1) if n >= 0}


@contextmanager
def _locked(paths: Paths | None) -> Iterator[None]:
    folder(paths).mkdir(parents=True, exist_ok=True, mode=0o700)
    with (folder(paths) / "audit.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _refuse_personnummer(*texts: str) -> None:
    """What a person typed (a name, a reason) must never carry a personnummer into the log."""
    for text in texts:
        if _PERSONNUMMER_LIKE.search(text):
            raise Refused(
                "personnummer", "audit entries must not contain anything that looks like a personnummer"
            )


Anchor = tuple[int, str, str]  # a head recorded elsewhere: sequence number, hash, where it was recorded


class AnchorStore(Protocol):
    """Somewhere outside the audit folder that keeps the log's heads, which the log's writer cannot rewrite.

    The platform's store is Dagster's event log (``pipelines.defs.anchors``); the definitions layer and
    the entry points hand it in, so this library never imports Dagster.
    """

    def record(self, entry: Entry) -> None:
        """Keep this entry's head (a steward's decision, as it is made)."""

    def heads(self) -> list[Anchor]:
        """Every head kept lately: decisions' and those the link materialisations recorded."""


def check_anchors(entries: list[Entry], anchors: list[Anchor]) -> int:
    """Check heads recorded elsewhere (seq, hash, where) against the log; return how many were checked.

    The link assets put the head into every materialisation, so Dagster's event
    log holds heads the audit folder cannot rewrite: a log rebuilt from scratch
    with fresh hashes, or cut short, no longer contains them.
    """
    for seq, expected, where in anchors:
        if seq > len(entries):
            raise AuditError(f"{where} recorded entry {seq}, but the log has only {len(entries)} entries")
        if entries[seq - 1].hash != expected:
            raise AuditError(f"{where} recorded entry {seq} with another hash: the log was rewritten")
    return len(anchors)


def verify_anchored(anchors: AnchorStore, paths: Paths | None = None) -> list[Entry]:
    """The entries, if the chain, the head, the signatures and every anchored head hold.

    Fails closed: a log with steward decisions but no anchored head at all (a wiped or
    different Dagster instance) approves nothing. A log without decisions shares nothing
    anyway, so a first run, before any decision, passes.
    """
    entries = verify(paths)
    heads = anchors.heads()
    if not heads and any(e.action in DECISIONS for e in entries):
        raise AuditError(
            "the log holds steward decisions but Dagster holds no anchored head of it "
            "(another DAGSTER_HOME, or the log was made outside Knutpunkt): nothing is shared"
        )
    check_anchors(entries, heads)
    return entries
