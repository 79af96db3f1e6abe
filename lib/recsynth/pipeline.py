"""The job chain, in order, run by `recsynth pipeline`; the clickstream jobs join it when
`clickstream.enabled` (they take longer than the default run's 15 minutes allow). On the
synthetic clickstream (lake.clickstream=synthetic) it is gold and recommend alone."""
from __future__ import annotations

from recsynth.tasks.clean import CLEAN
from recsynth.tasks.evaluate_synthetic import EVALUATE_SYNTHETIC
from recsynth.tasks.gold import GOLD
from recsynth.tasks.ingest import INGEST
from recsynth.tasks.recommend import RECOMMEND
from recsynth.tasks.synthesize import SYNTHESIZE
from recsynth.tasks.synthesize_events import SYNTHESIZE_EVENTS

ETL = (INGEST, CLEAN, GOLD)            # raw sources -> gold tables
PIPELINE = (*ETL, SYNTHESIZE, RECOMMEND)
CLICKSTREAM = (SYNTHESIZE_EVENTS, EVALUATE_SYNTHETIC)
JOBS = {job.name: job for job in (*PIPELINE, *CLICKSTREAM)}


def pipeline_jobs(conf, until: str | None = None) -> tuple:
    """The jobs `recsynth pipeline` runs under `conf`, in order; with `until`, up to that job
    (None when `until` is not one of them: a clickstream job while clickstream.enabled is false)."""
    if conf.lake.clickstream == "synthetic":
        jobs = tuple(job for job in PIPELINE if job.runs_on_synthetic)
    else:
        jobs = (*PIPELINE, *CLICKSTREAM) if conf.clickstream.enabled else PIPELINE
    names = [job.name for job in jobs]
    if until is None:
        return jobs
    return jobs[:names.index(until) + 1] if until in names else None
