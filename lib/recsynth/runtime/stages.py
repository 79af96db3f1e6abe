"""Named stages of a long job, timed and logged as they start and end, so a user watching the
log sees where the time goes (and the timings can be tracked with the run)."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager

log = logging.getLogger(__name__)


class Stages:
    def __init__(self, job: str):
        self.job = job
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, key: str, description: str):
        """Time the block as stage `key` (a short name for metrics), logging `description`: its start
        in the log file, its end on the console too."""
        log.debug("%s: %s ...", self.job, description)
        started = time.monotonic()
        yield
        self.seconds[key] = round(time.monotonic() - started, 1)
        log.info("%s: %s: done in %.1f s", self.job, description, self.seconds[key])
