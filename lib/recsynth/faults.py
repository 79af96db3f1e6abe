"""Failpoints: kill the job's own process group at a named point of a table write, so a test
can crash a real run exactly there and check what the lake and the next run make of it.

Armed only by the environment: RECSYNTH_FAILPOINT=<when>:<table>, `when` being
- `writing`: while the table's data files are being written (its Delta commit not yet made);
- `committed`: right after the table's commit, before the job's next step.
Run the job as its own process group (`setsid`): the whole group is killed with SIGKILL, as a
lost driver machine would be. Unarmed (the default), every call here is a no-op."""
from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

ENV = "RECSYNTH_FAILPOINT"


def armed(when: str, table: str) -> bool:
    return os.environ.get(ENV) == f"{when}:{table}"


def crash(pid: int) -> None:
    """SIGKILL the process group that `pid` leads (or only `pid` when it leads none)."""
    if os.getpgid(pid) == pid:
        os.killpg(pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def after_commit(table: str) -> None:
    if armed("committed", table):
        log.warning("failpoint %s=committed:%s: killing the job", ENV, table)
        crash(os.getpid())


def while_writing(table: str, frame):
    """`frame` unchanged, or, when armed, a frame whose write kills the driver's process group
    once its first rows have reached the writer."""
    if not armed("writing", table):
        return frame
    log.warning("failpoint %s=writing:%s: the job will be killed during this write", ENV, table)
    driver = os.getpid()

    def pass_then_crash(batches):
        for batch in batches:
            yield batch
            crash(driver)

    return frame.mapInPandas(pass_then_crash, frame.schema)
