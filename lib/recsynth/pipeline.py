"""The job chain, in order, run by `recsynth pipeline`."""
from __future__ import annotations

from recsynth.tasks.clean import CLEAN
from recsynth.tasks.gold import GOLD
from recsynth.tasks.ingest import INGEST
from recsynth.tasks.recommend import RECOMMEND
from recsynth.tasks.synthesize import SYNTHESIZE

ETL = (INGEST, CLEAN, GOLD)            # raw sources -> gold tables
PIPELINE = (*ETL, SYNTHESIZE, RECOMMEND)
JOBS = {job.name: job for job in PIPELINE}
