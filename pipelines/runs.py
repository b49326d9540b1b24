"""Runs whose process died: marked failed, and the pool slots they held released, without a daemon.

DuckDB admits one writer per file, so each writer step holds a slot of its file's pool
(``dagster.yaml``). A run killed with SIGKILL never reports its end: it stays STARTED and keeps its
slot, and every later load of that unit would wait on it forever. The main job runs in-process and
tags each run with its process (host, pid and the process's start time, so a reused pid is not
taken for the run's); before it starts work, and on every tick of the delivery sensor, runs whose
process is gone are reported failed and their slots freed. Runs launched by the daemon
(``knutpunkt ui``) are watched by Dagster's own run monitoring.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

PROCESS_TAG = "knutpunkt/process"  # host:pid:start-ticks of the process that executes the run
UNFINISHED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


def _start_ticks(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> dict[str, str]:
    """Tags for a run executed in this process."""
    pid = os.getpid()
    return {PROCESS_TAG: f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"}


def _dead(tag: str) -> bool:
    host, pid, ticks = tag.rsplit(":", 2)
    return host == socket.gethostname() and _start_ticks(int(pid)) != ticks


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's runs whose process is gone as failed and free their pool slots; say which."""
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        tag = run.tags.get(PROCESS_TAG)
        if not tag or not _dead(tag):
            continue
        instance.report_run_failed(run, message="its process is gone (killed or crashed); slots released")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(
            f"run {run.run_id} ({run.job_name}) died with its process: marked failed, slots freed"
        )
    return released


def slot_holders(instance: dg.DagsterInstance, pool: str) -> list[str]:
    """The runs holding a pool's slots, for a message that says what a step waits for."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return sorted({slot.run_id for slot in info.claimed_slots})
