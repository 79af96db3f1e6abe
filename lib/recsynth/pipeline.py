"""The job chain, in order, and the summary a user sees at the end of `recsynth pipeline`."""
from __future__ import annotations

from recsynth.tasks.clean import CLEAN
from recsynth.tasks.gold import GOLD
from recsynth.tasks.ingest import INGEST
from recsynth.tasks.synthesize import SYNTHESIZE

PIPELINE = (INGEST, CLEAN, GOLD)
# synthesize runs on its own until its quality report and tracking land; then it joins PIPELINE
JOBS = {job.name: job for job in (*PIPELINE, SYNTHESIZE)}
