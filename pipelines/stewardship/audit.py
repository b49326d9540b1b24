"""The stewardship audit log: append-only JSON lines, each entry hashing the one before it.

Who approved, revoked, published, withdrew, exported or deleted what, when,
under which contract version. Entry n stores the hash of entry n-1 and its own
hash over its content, so editing, deleting or inserting an entry breaks the
chain; a separate head file (last sequence number and hash) catches a deleted
tail, and every link materialisation records the head in Dagster's event log,
an anchor outside this folder. The log never holds person-level data: only
dataset names, contract versions, counts and the people who decided.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.settings import Paths

GENESIS = "0" * 64
ACTIONS = ("approve", "revoke", "expire", "publish", "withdraw", "export", "retention")
SYSTEM = "knutpunkt"  # the actor of what the platform does by itself (publish, withdraw, retention)
FREE_TEXT = ("steward", "purpose", "reason", "note")  # what people type; checked for personnummer
_PERSONNUMMER_LIKE = re.compile(r"\d{6,8}[-+]?\d{4}")


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

    def body(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "hash"}


def folder(paths: Paths | None = None) -> Path:
    """``$KNUTPUNKT_HOME/stewardship``: never inside the repository."""
    return (paths or Paths.from_env()).home / "stewardship"


def log_path(paths: Paths | None = None) -> Path:
    return folder(paths) / "audit.jsonl"


def head_path(paths: Paths | None = None) -> Path:
    return folder(paths) / "audit.head"


def entry_hash(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    action: str,
    *,
    actor: str = SYSTEM,
    dataset: str | None = None,
    contract_version: str | None = None,
    details: dict | None = None,
    paths: Paths | None = None,
) -> Entry:
    """Append one entry under an exclusive lock (several processes may write), after verifying the chain."""
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
        entry = Entry(**body, hash=entry_hash(body))
        with log_path(paths).open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry.__dict__, sort_keys=True, ensure_ascii=True) + "\n")
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
        prev = e.hash
    head = head_path(paths)
    if not head.exists():
        if entries:
            raise AuditError(f"{head} is missing while the log has {len(entries)} entries")
        return entries
    seq, _, last = head.read_text().strip().partition(" ")
    if int(seq) != len(entries) or last != prev:
        raise AuditError(
            f"the log ends at entry {len(entries)} but its head says {seq} (entries were removed or appended "
            "outside Knutpunkt)"
        )
    return entries


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
            raise ValueError("audit entries must not contain anything that looks like a personnummer")


def check_anchors(entries: list[Entry], anchors: list[tuple[int, str, str]]) -> int:
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


def dagster_anchors(instance, asset_keys: list, per_asset: int = 200) -> list[tuple[int, str, str]]:
    """The ``audit_head`` metadata of the latest materialisations of the given assets."""
    anchors = []
    for key in asset_keys:
        for record in instance.fetch_materializations(key, limit=per_asset).records:
            head = record.asset_materialization.metadata.get("audit_head")
            if head is not None and head.value != "empty":
                seq, _, hash_ = str(head.value).partition(" ")
                anchors.append((int(seq), hash_, f"Dagster run {record.run_id[:8]} ({key.to_user_string()})"))
    return anchors
