"""Runs whose process died: marked failed and their pool slots freed; failed runs asked for again.

DuckDB admits one writer per file, so each writer step holds a slot of its file's pool
(``dagster.yaml``). A run killed with SIGKILL never reports its end: it stays STARTED and keeps its
slot, and every later load of that unit would wait on it forever. Dagster's run monitoring cannot
tell with its default run launcher (it has no health check of a run's process), and when
``knutpunkt ui`` dies with its runs no code server is left to report them. So every run tags itself
where it starts executing (``mark``, called by the platform resource) with its process: host, pid
and the process's start time (a reused pid is not taken for the run's), under the run's own id (a
re-execution copies its parent's tags; a copy names another run and is not trusted); a run the CLI
executes in process is tagged from its creation (``in_this_process``). Before the main job starts
work, and on every tick of the delivery sensor, runs whose process is gone are reported failed and
their slots freed; when ``knutpunkt ui`` starts, so are runs with no tag of their own, which the
last daemon launched and lost before their resources started.

A run a sensor asked for that failed (killed, a disk full, a lock held too long) is asked for again
by that sensor, up to ``ATTEMPTS`` runs in all (``Attempts``): a delivery is never left unloaded
because one run of it died, and a delivery that fails every time is said, not retried for ever.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

PROCESS_TAG = "knutpunkt/process"  # run-id@host:pid:start-ticks of the process that executes the run
REQUEST_TAG = "knutpunkt/request"  # what a sensor asked for: a delivery, a wave of links for the marts
UNFINISHED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
ATTEMPTS = 3


def _start_ticks(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    """This process as a run's tag names it: host, pid and start time."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def mark(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Tag a run, from the process that executes it, with that process; a run the CLI executes carries
    the tag from its creation (``in_this_process``), which is not written again."""
    tag = _tag(run.run_id)
    if run.tags.get(PROCESS_TAG) != tag[PROCESS_TAG]:
        instance.add_run_tags(run.run_id, tag)


def in_this_process() -> tuple[str, dict[str, str]]:
    """A new run's id and its tag, for a run this process executes (``execute_in_process``): tagged from
    its creation, so a run killed before its resources start is known as this process's too."""
    run_id = str(uuid.uuid4())
    return run_id, _tag(run_id)


def _tag(run_id: str) -> dict[str, str]:
    return {PROCESS_TAG: f"{run_id}@{this_process()}"}


def _own_process(run: dg.DagsterRun) -> str | None:
    """The process the run's tag names, if the tag is its own (not yet tagged, or copied from the run it
    re-executes: None)."""
    owner, _, process = run.tags.get(PROCESS_TAG, "").partition("@")
    return process if owner == run.run_id else None


def _gone(process: str) -> bool:
    host, pid, ticks = process.rsplit(":", 2)
    return host == socket.gethostname() and _start_ticks(int(pid)) != ticks


def release_dead_runs(instance: dg.DagsterInstance, orphans: bool = False) -> list[str]:
    """Mark this host's runs whose process is gone as failed and free their pool slots; say which.
    ``orphans``: also runs with no tag of their own, which only the daemon launches (the CLI tags its runs
    from their creation): when ``knutpunkt ui`` starts, no daemon of this home is alive, so such a run
    died with the last one before its resources started."""
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        process = _own_process(run)
        if not (_gone(process) if process else orphans):
            continue
        instance.report_run_failed(run, message="its process is gone (killed or crashed); slots released")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(
            f"run {run.run_id} ({run.job_name}) died with its process: marked failed, slots freed"
        )
    return released


@dataclass(frozen=True)
class Attempts:
    """The runs a sensor asked for one request (``REQUEST_TAG``): whether to ask again."""

    under_way: bool
    ended: bool  # one succeeded, or was canceled by hand: not asked again
    failed: list[str]  # run ids, oldest first

    @property
    def again(self) -> bool:
        return not (self.under_way or self.ended) and 0 < len(self.failed) < ATTEMPTS

    @property
    def given_up(self) -> bool:
        return not (self.under_way or self.ended) and len(self.failed) >= ATTEMPTS

    def asking_again(self, what: str) -> str:
        return f"{what} failed in run {self.failed[-1]}; asking again ({len(self.failed) + 1} of {ATTEMPTS})"

    def gave_up(self, what: str) -> str:
        return f"{what} failed in {len(self.failed)} runs ({', '.join(self.failed)})"

    def run_key(self, request: str) -> str:
        """The next attempt's run key (a sensor's run key is asked for once)."""
        return f"{request}#{len(self.failed) + 1}"


def attempts(instance: dg.DagsterInstance, request: str) -> Attempts:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={REQUEST_TAG: request}))
    statuses = {run.status for run in runs}
    return Attempts(
        under_way=bool(statuses - FINISHED),
        ended=bool(statuses & {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED}),
        failed=[run.run_id for run in reversed(runs) if run.status == dg.DagsterRunStatus.FAILURE],
    )


def slot_holders(instance: dg.DagsterInstance, pool: str) -> list[str]:
    """The runs holding a pool's slots, for a message that says what a step waits for."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return sorted({slot.run_id for slot in info.claimed_slots})
