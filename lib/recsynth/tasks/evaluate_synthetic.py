"""Evaluate synthetic: can synthetic.events stand in for the real clickstream? Measured the way a
recommender team would: train on synthetic, test on real (TSTR).

Each model of `clickstream.tstr_models` learns its item side (co-occurrence counts, item-kNN or
EASE similarities, ALS item factors) three times: from the real fit periods, from synthetic.events alone, and from
both (augmentation). Each then scores the real users from their real fit-period histories, on
the real `recs.evaluation_split`, on both tasks of `recsynth recommend` (`next`, `discovery`),
per source and pooled, with bootstrap intervals (ALS folds each real user into its item
factors: `rec.als_fold_in`); the same rules, exclusions and fallback as the
recommend job, through its own code. `recent` has no item side and is left out. Each result's
ratio to the same model trained on real data goes to synthetic.utility, pooled with the paired
bootstrap interval of the ratio (`intervals.paired_ratio`, over the same resampled users for
both models): the uncertainty of the ratio itself, which two NDCG intervals do not give.

EASE uses the first `recs.ease.l2` for all three: the comparison holds the setting fixed.
"""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.errors import RecommenderError
from recsynth.etl.gold import interactions
from recsynth.frames import spark_settings
from recsynth.rec.columns import EVENT_TIME, EVENT_TYPE, ITEM_ID, SOURCE, USER_ID
from recsynth.rec.evaluate import MODEL, NDCG, POOLED, TASK
from recsynth.rec.intervals import paired_ratio
from recsynth.rec.recommenders import Ease, History, Recommender
from recsynth.rec.rules import DISCOVERY, NEXT, TASKS
from recsynth.runtime.cache import cached_frames, checkpointed_frames
from recsynth.runtime.runs import Job, Outcome, RunContext
from recsynth.runtime.tracking import tracked_run
from recsynth.tasks.recommend import SETTINGS, FitCache, Recommend

log = logging.getLogger(__name__)

REAL, SYNTHETIC, BOTH = "real", "synthetic", "real+synthetic"
UTILITY_SCHEMA = T.schema(T.SYNTHETIC_UTILITY)


def evaluate_synthetic(ctx: RunContext) -> Outcome:
    scratch = f"{ctx.lake.root}/_scratch/evaluate_synthetic/{ctx.run_id}"
    with tracked_run(ctx.conf, "evaluate_synthetic", ctx.run_id) as tracker, cached_frames() as keep, \
            checkpointed_frames(ctx.spark, scratch) as cut, spark_settings(ctx.spark, SETTINGS):
        return SyntheticUtility(ctx, tracker, keep, cut, scratch).run()


class SyntheticUtility(Recommend):
    """The recommend job's inputs, yardstick and scorer; models fitted on real, synthetic and both."""
    job_name = "evaluate_synthetic"

    def run(self) -> Outcome:
        conf, lake, keep = self.conf, self.lake, self.keep
        synthetic_version = lake.version(T.SYNTHETIC_EVENTS)
        self._prepare()
        period = self._period(list(conf.fit_splits), conf.evaluation_split)
        with self.stage("synthetic", f"reading {T.SYNTHETIC_EVENTS} v{synthetic_version}"):
            table = lake.read(T.SYNTHETIC_EVENTS, version=synthetic_version)
            first = table.select("model_version").head()
            if first is None:
                raise RecommenderError(f"{T.SYNTHETIC_EVENTS} v{synthetic_version} has no event")
            columns = [SOURCE, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_TIME, "quantity"]
            synthetic = keep(table.select(*columns))
            synthetic_events = synthetic.count()
            real = period.history.events.select(*columns) if "quantity" in period.history.events.columns else \
                period.history.events.select(*columns[:-1]).withColumn("quantity", F.lit(None).cast("int"))
            both = keep(real.unionByName(synthetic))
            histories = {REAL: period.history,
                         SYNTHETIC: History(synthetic, keep(interactions(synthetic, self.weights, self.purchase_quantity))),
                         BOTH: History(both, keep(interactions(both, self.weights, self.purchase_quantity)))}
        models: dict[tuple[str, str], Recommender] = {}
        labels: dict[str, tuple[str, str]] = {}   # the scorer's model label -> (model, trained on)
        with self.stage("fit", f"fitting {', '.join(self.ctx.conf.clickstream.tstr_models)} on real, synthetic and both"):
            for trained_on, history in histories.items():
                fitted = FitCache(history)
                for name in self.ctx.conf.clickstream.tstr_models:
                    setting = {"l2": conf.ease.l2[0]} if name == Ease.name else {}
                    label = f"{name} {trained_on}"
                    labels[label] = (name, trained_on)
                    models.update({(label, task): self._baseline(name, setting, fitted) for task in TASKS})
        with self.stage("evaluate", f"scoring {len(models) // len(TASKS)} models on the real {conf.evaluation_split} period"):
            rows, replicates = self._evaluate(models, period)
        measured_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        utility = _utility_rows(rows, labels, replicates, run_id=self.ctx.run_id, model_version=first["model_version"],
                                data_version=self.data_version, split=conf.evaluation_split, k=conf.k,
                                measured_at=measured_at)
        lake.append(T.SYNTHETIC_UTILITY, self.ctx.spark.createDataFrame(utility, UTILITY_SCHEMA), add_columns=True)
        self.tracker.tags({"synthetic_data": T.SYNTHETIC_EVENTS, "synthetic_data_version": synthetic_version,
                           "synthetic_model_version": first["model_version"], "training_data_version": self.data_version})
        self.tracker.metrics({f"{r['model']}.{r['trained_on'].replace('+', '_and_')}.{r['task']}.ratio_to_real":
                              r["ratio_to_real"]
                              for r in utility if r["source"] == POOLED and r["ratio_to_real"] is not None})
        return Outcome(rows_in=synthetic_events, rows_out=len(utility), message=_summary(utility))


def _utility_rows(rows: list[dict], labels: dict[str, tuple[str, str]],
                  replicates: dict[tuple[str, str], np.ndarray], **common) -> list[dict]:
    """synthetic.utility rows: the scorer's rows relabelled (model, trained_on), each with its
    ratio to the same model, task and source trained on real data (None where that is 0 or
    undefined) and, pooled, the ratio's paired bootstrap interval from the scorer's `replicates`
    ((label, task) -> the pooled NDCG's replicate means)."""
    real = {(labels[r[MODEL]][0], r[TASK], r[SOURCE]): r[NDCG] for r in rows if labels[r[MODEL]][1] == REAL}
    real_label = {labels[label]: label for label in labels}
    out = []
    for r in rows:
        model, trained_on = labels[r[MODEL]]
        reference = real.get((model, r[TASK], r[SOURCE]))
        ratio = r[NDCG] / reference if r[NDCG] is not None and reference else None
        low = high = None
        if ratio is not None and r[SOURCE] == POOLED:
            paired = paired_ratio(replicates[(r[MODEL], r[TASK])], replicates[(real_label[(model, REAL)], r[TASK])])
            low, high = (None if np.isnan(v) else v for v in (paired.low, paired.high))
        out.append({"run_id": common["run_id"], "synthetic_model_version": common["model_version"],
                    "training_data_version": common["data_version"], "evaluation_split": common["split"],
                    "model": model, "trained_on": trained_on, "task": r[TASK], "source": r[SOURCE], "k": common["k"],
                    NDCG: r[NDCG], "ndcg_at_k_low": r.get("ndcg_at_k_low"), "ndcg_at_k_high": r.get("ndcg_at_k_high"),
                    "users": r["users"], "ratio_to_real": ratio, "ratio_to_real_low": low, "ratio_to_real_high": high,
                    "measured_at": common["measured_at"]})
    return out


def _summary(utility: list[dict]) -> str:
    """The console line: per model, TSTR's ratio to real on both tasks (pooled)."""
    def ratio(model: str, task: str) -> str:
        row = next((r for r in utility if r["model"] == model and r["trained_on"] == SYNTHETIC and r["task"] == task
                    and r["source"] == POOLED), None)
        return "n/a" if row is None or row["ratio_to_real"] is None else f"{row['ratio_to_real']:.2f}x"

    models = sorted({r["model"] for r in utility})
    return "trained on synthetic, tested on real (ratio to real-trained NDCG, next / discovery): " + ", ".join(
        f"{m} {ratio(m, NEXT)} / {ratio(m, DISCOVERY)}" for m in models)


EVALUATE_SYNTHETIC = Job(
    name="evaluate_synthetic",
    inputs=(T.GOLD_SPLITS, T.GOLD_ITEM_FEATURES, T.SYNTHETIC_EVENTS),
    outputs=(T.SYNTHETIC_UTILITY,),
    conf_keys=("recs.k", "recs.fit_splits", "recs.evaluation_split", "recs.truth_event_types", "recs.evaluate_users",
               "recs.exclude_purchased", "recs.exclude_viewed", "recs.exclusions_by_source", "recs.categories",
               "recs.bootstrap_replicates", "recs.seed", "recs.top_n.block_rows", "recs.history_items",
               "recs.cooccurrence", "recs.itemknn", "recs.ease", "recs.als", "gold.event_weights", "gold.purchase_quantity",
               "clickstream.tstr_models"),
    body=evaluate_synthetic,
    description="recommenders trained on synthetic.events (and on real + synthetic) tested on real users: "
                "synthetic.utility",
)
