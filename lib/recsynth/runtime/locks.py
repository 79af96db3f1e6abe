"""One run of a job at a time per lake.

Two ingests at once would both append the same new files to bronze; two recommends would
race on the same tables. A job takes `<lake.root>/_locks/<job>.lock` (created atomically, so
exactly one process wins) for the whole run. Another run of that job either waits for it
(`ops.lock_wait_s`) or fails with a message naming the holder. A lock left by a process that
died (SIGKILL, lost machine) on this host is taken over; one held on another host is only
reported, since its process cannot be checked from here.

Atomic creation needs a local or POSIX file system (a local warehouse, a standalone cluster's
shared disk). On object stores there is no such primitive: there the scheduler must keep runs
apart (the Databricks bundle sets `max_concurrent_runs: 1`), and the lock is skipped with a log line.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from recsynth.errors import LakeError, RecsynthError
from recsynth.paths import create_new, filesystem, python_io_uri

log = logging.getLogger(__name__)

POLL_S = 1.0


class JobLocked(RecsynthError):
    """Another run of the same job holds its lock."""


def lock_path(lake_root: str, job: str) -> Path | None:
    """The lock file of `job`, or None when the lake is not on a local file system."""
    from fsspec.utils import get_protocol

    uri = python_io_uri(lake_root)
    if get_protocol(uri) not in ("file", "local"):
        return None
    _, root = filesystem(uri)
    return Path(root) / "_locks" / f"{job}.lock"


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:  # being written right now by its creator
        return {}


def _dead_here(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _describe(holder: dict, path: Path) -> str:
    if not holder:
        return f"another run holds {path}"
    return (f"run {holder.get('run_id')} holds it (pid {holder.get('pid')} on {holder.get('host')}, "
            f"since {holder.get('since')} UTC)")


def _created(path: Path, text: str) -> bool:
    """create_new, with a storage failure (disk full, no permission) said as one LakeError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return create_new(path, text)
    except OSError as err:
        raise LakeError(f"cannot take the job lock {path}: {err.strerror}. Fix the storage and run the job again") from None


@contextmanager
def job_lock(lake_root: str, job: str, run_id: str, wait_s: float = 0.0):
    """Hold `job`'s lock for the block; wait up to `wait_s` for another run, then raise JobLocked."""
    path = lock_path(lake_root, job)
    if path is None:
        log.info("%s: %s is not a local file system; runs are not locked (keep them apart in the scheduler)",
                 job, lake_root)
        yield
        return
    holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
              "since": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")}
    deadline = time.monotonic() + wait_s
    announced = False
    while not _created(path, json.dumps(holder)):
        current = _holder(path)
        if current and _dead_here(current):
            log.warning("%s: taking over the lock of run %s, whose process %s has died", job, current.get("run_id"),
                        current.get("pid"))
            path.unlink(missing_ok=True)
            continue
        if time.monotonic() >= deadline:
            raise JobLocked(f"job {job} is already running: {_describe(current or {}, path)}. Wait for it to end "
                            f"(or set ops.lock_wait_s to wait); if that process is gone for good, delete {path}")
        if not announced:
            log.info("%s: waiting up to %.0f s for the running job: %s", job, wait_s, _describe(current or {}, path))
            announced = True
        time.sleep(POLL_S)
    try:
        yield
    finally:
        if (_holder(path) or {}).get("run_id") == run_id:
            path.unlink(missing_ok=True)
