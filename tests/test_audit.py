"""The audit log's chain: every edit, deletion or insertion is caught, also by ``knutpunkt audit verify``."""

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import Paths
from pipelines.stewardship import audit


def _fill(paths: Paths, n: int = 6) -> list[str]:
    for i in range(n):
        audit.record("publish", dataset="skola.inskrivning", details={"rows": i}, paths=paths)
    return audit.log_path(paths).read_text().splitlines(keepends=True)


def _rewrite(paths: Paths, lines: list[str]) -> None:
    audit.log_path(paths).write_text("".join(lines))


def test_a_clean_log_verifies(home):
    _fill(home)
    entries = audit.verify(home)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev == audit.GENESIS and all(
        b.prev == a.hash for a, b in zip(entries, entries[1:], strict=False)
    )


def test_an_edited_entry_is_caught(home):
    lines = _fill(home)
    entry = json.loads(lines[2])
    entry["details"]["rows"] = 999
    lines[2] = json.dumps(entry, sort_keys=True) + "\n"
    _rewrite(home, lines)
    with pytest.raises(audit.AuditError, match="entry 3: content does not match"):
        audit.verify(home)


def test_a_deleted_entry_is_caught(home):
    lines = _fill(home)
    _rewrite(home, lines[:2] + lines[3:])
    with pytest.raises(audit.AuditError, match="line 3: sequence number 4"):
        audit.verify(home)


def test_an_inserted_entry_is_caught_even_with_a_valid_hash_of_its_own(home):
    lines = _fill(home)
    forged = json.loads(lines[3])
    forged["details"] = {"rows": 1}
    forged["hash"] = audit.entry_hash({k: v for k, v in forged.items() if k != "hash"})
    _rewrite(home, lines[:3] + [json.dumps(forged, sort_keys=True) + "\n"] + lines[3:])
    with pytest.raises(audit.AuditError, match="line 5: sequence number 4"):
        audit.verify(home)


def test_a_removed_tail_is_caught_by_the_head(home):
    lines = _fill(home)
    _rewrite(home, lines[:-1])
    with pytest.raises(audit.AuditError, match="ends at entry 5 but its head says 6"):
        audit.verify(home)


def test_a_writer_killed_between_its_entry_and_the_head_leaves_a_log_that_verifies_and_goes_on(home):
    """``record`` appends, then moves the head: a kill between the two (the chaos test hit it) leaves the
    head one entry behind. The entry is whole and chained, so the log verifies and the next entry follows."""
    _fill(home)
    head = audit.head_path(home).read_text()
    audit.record("withdraw", dataset="skola.inskrivning", paths=home)
    audit.head_path(home).write_text(head)  # the head as the killed writer left it
    assert [e.seq for e in audit.verify(home)] == [1, 2, 3, 4, 5, 6, 7]
    assert audit.record("export", dataset="skola.inskrivning", paths=home).seq == 8
    assert audit.head_path(home).read_text().startswith("8 ")


def test_a_writer_killed_before_the_first_head_leaves_a_log_that_verifies(home):
    audit.record("publish", dataset="skola.inskrivning", paths=home)
    audit.head_path(home).unlink()
    assert [e.seq for e in audit.verify(home)] == [1]


def test_a_head_two_entries_behind_or_ahead_is_caught(home):
    lines = _fill(home)
    audit.head_path(home).write_text(f"4 {json.loads(lines[3])['hash']}\n")
    with pytest.raises(audit.AuditError, match="ends at entry 6 but its head says 4"):
        audit.verify(home)
    _rewrite(home, lines[:4])
    audit.head_path(home).write_text(f"5 {json.loads(lines[4])['hash']}\n")
    with pytest.raises(audit.AuditError, match="ends at entry 4 but its head says 5"):
        audit.verify(home)


def test_a_missing_head_is_caught_when_more_than_one_entry_lacks_it(home):
    _fill(home, 2)
    audit.head_path(home).unlink()
    with pytest.raises(audit.AuditError, match="is missing while the log has 2 entries"):
        audit.verify(home)


def test_a_tampered_log_refuses_new_entries(home):
    lines = _fill(home)
    _rewrite(home, lines[:2] + lines[3:])
    with pytest.raises(audit.AuditError):
        audit.record("export", dataset="skola.inskrivning", paths=home)


def test_audit_verify_command_exits_nonzero_on_tampering(home):
    lines = _fill(home)
    env = os.environ | {"KNUTPUNKT_HOME": str(home.home)}
    verify = [sys.executable, "-m", "pipelines.cli", "audit", "verify"]
    ok = subprocess.run(verify, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "6 entries" in ok.stdout, ok.stdout + ok.stderr
    _rewrite(home, lines[:1] + lines[2:])
    broken = subprocess.run(verify, env=env, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and "does NOT verify" in broken.stdout


def _append_many(home: str, n: int) -> None:
    paths = Paths(Path(home))
    for i in range(n):
        audit.record("export", dataset="kontaktcenter.kontakter", details={"rows": i}, paths=paths)


def test_concurrent_writers_keep_the_chain_whole(home):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(str(home.home), 15)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert len(audit.verify(home)) == 60


def test_typed_text_with_a_personnummer_is_refused(home):
    with pytest.raises(ValueError, match="personnummer"):
        audit.record("revoke", actor="steward", details={"reason": "see 811218-9876"}, paths=home)
    assert audit.read(home) == []
