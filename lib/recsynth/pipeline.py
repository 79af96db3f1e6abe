"""The job chain, in order, and the summary a user sees at the end of `recsynth pipeline`."""
from __future__ import annotations

from recsynth.tasks.clean import CLEAN
from recsynth.tasks.gold import GOLD
from recsynth.tasks.ingest import INGEST

JOBS = {job.name: job for job in (INGEST, CLEAN, GOLD)}
PIPELINE = tuple(JOBS.values())
