"""Recommend: gold.splits + gold.item_features -> the baselines of recs.baselines (popularity, the
user's own recent items, co-occurrence, item-kNN, EASE, ALS, the user's recent items then EASE's:
all by default), the sequence model on Horovod ranks, and the two-tower when
recs.two_tower.enabled, scored on two tasks -> recs.metrics; then the served
model's top-N for every user (recs.top_n) and the similar items of the best model that has
item-to-item scores (recs.similar_items).

Tasks (`recsynth.rec.rules`): `next` counts every item of the held-out period, repeats included;
`discovery` only items new to the user. Every mean NDCG has a bootstrap 95% interval over users,
per source and pooled (source `all`).

Selection (`recs.validation_split`): the models are fitted on the other fit periods and scored on
the validation period; EASE's l2 is chosen there per task (with `recs.search`, every combination
of each model's grid too), the sequence model's epochs by early stopping on a sample of
validation users, and the served model by a challenge in order of complexity on `next`
(`recsynth.rec.select`). Every model is then refitted on all of `recs.fit_splits` under the
setting each task chose (the sequence model for its chosen epochs) and reported on
`recs.evaluation_split`, which chooses nothing. The two-tower is trained once, on the fit
periods: it is reported, and served only when `recs.serve` names it.

Rules, the same for evaluation and serving: exclusions per source (`recs.exclude_purchased`,
`recs.exclude_viewed`, `recs.exclusions_by_source`), only items of the current catalogue within
`recs.categories`, and a list shorter than k (a user a model knows nothing about) is filled up
from the user's own source's most popular items. At evaluation histories, exclusions and
popularity come from the fit periods; for serving, from every event.

Training on synthetic data (alone, or added to the real events) is measured by
`recsynth evaluate-synthetic` on synthetic.events (`recsynth.tasks.evaluate_synthetic`).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import grid_settings
from recsynth.errors import RecommenderError
from recsynth.etl.gold import interactions
from recsynth.frames import spark_settings
from recsynth.rec import rules, topn
from recsynth.rec.baselines import popular_per_source, then_fill
from recsynth.rec.columns import EVENT_TIME, EVENT_TYPE, ITEM_ID, MODEL_VERSION, SOURCE, USER_ID
from recsynth.rec.evaluate import MODEL, NDCG, POOLED, TASK, Yardstick, evaluate
from recsynth.rec.metrics import item_popularity
from recsynth.rec.recommenders import (Als, Cooccurrence, Ease, History, ItemKnn, Popularity, Recent, RecentThenEase,
                                       Recommender)
from recsynth.rec.rules import DISCOVERY, NEXT, TASKS, Exclusion
from recsynth.rec.select import best_setting, champion, setting_label
from recsynth.rec.two_tower import model_uri
from recsynth.runtime.cache import cached_frames, checkpointed_frames
from recsynth.runtime.runs import Job, Outcome, RunContext
from recsynth.runtime.stages import Stages
from recsynth.runtime.tracking import Tracker, tracked_run
from recsynth.tasks.recommend_sequence import SequenceRecommender
from recsynth.tasks.recommend_two_tower import TwoTower
from recsynth.train import checkpoints

log = logging.getLogger(__name__)

TWO_TOWER = "two_tower"
SEQUENCE = "sequence"
SPLIT = "split"
METRICS_SCHEMA = T.schema(T.RECS_METRICS)


@dataclass
class FitCache:
    """The baselines fitted on one history, by setting label, and the EASE Gram matrices they share."""
    history: History
    models: dict[str, Recommender] = field(default_factory=dict)
    grams: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    """Fit periods and the held-out one: the fit history, the yardstick, and the fit period's
    popularity (per source for the fallback; per item for novelty)."""
    history: History
    yardstick: Yardstick
    popular: DataFrame
    popularity: DataFrame
    users: int


# Adaptive query execution re-plans every shuffle stage as its own job; the job's many small
# plans (a list per model, task and period) ran 2-3x slower with it on 2 cores.
SETTINGS = {"spark.sql.adaptive.enabled": "false"}


def recommend(ctx: RunContext) -> Outcome:
    scratch = f"{ctx.lake.root}/_scratch/recommend/{ctx.run_id}"
    with tracked_run(ctx.conf, "recommend", ctx.run_id) as tracker, cached_frames() as keep, \
            checkpointed_frames(ctx.spark, scratch) as cut, spark_settings(ctx.spark, SETTINGS):
        return Recommend(ctx, tracker, keep, cut, scratch).run()


class Recommend:
    """One run of the job: inputs, selection on validation, the report on test, serving."""
    job_name = "recommend"

    def __init__(self, ctx: RunContext, tracker: Tracker, keep, cut, scratch: str):
        self.ctx, self.tracker, self.keep, self.cut, self.scratch = ctx, tracker, keep, cut, scratch
        self.conf, self.lake = ctx.conf.recs, ctx.lake
        self.stage = Stages(self.job_name)
        self.data_version = self.lake.version(T.GOLD_SPLITS)
        self.catalogue_version = self.lake.version(T.GOLD_ITEM_FEATURES)
        self.weights = dict(ctx.conf.gold.event_weights)
        self.purchase_quantity = ctx.conf.gold.purchase_quantity

    def run(self) -> Outcome:
        conf = self.conf
        self._prepare()
        self._track_params()
        chosen = self._select() if conf.validation_split else self._unselected()
        validation_rows = chosen["validation_rows"]
        test_rows, reported = self._report(chosen)
        measured_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        rows = [self._metrics_row(row, split, chosen, measured_at) for split, table in
                ((conf.validation_split, validation_rows), (conf.evaluation_split, test_rows)) for row in table]
        self.lake.append(T.RECS_METRICS, self.ctx.spark.createDataFrame(rows, METRICS_SCHEMA), add_columns=True)
        self.tracker.metrics({f"{r[MODEL]}.{r[TASK]}.{r[SOURCE]}.ndcg_at_k": r[NDCG] for r in test_rows
                              if r[NDCG] is not None})
        listed = self._serve(reported, chosen)
        return self._outcome(test_rows, chosen, listed, reported)

    def _prepare(self) -> None:
        """The real events, the eligible catalogue, its sizes, the users' sources and the exclusion rules."""
        conf, keep = self.conf, self.keep
        with self.stage("inputs", "preparing the events, the eligible catalogue and the exclusion rules"):
            splits = self.lake.read(T.GOLD_SPLITS, version=self.data_version)
            quantity = ["quantity"] if "quantity" in splits.columns else []  # lakes built before quantities
            self.events = keep(splits.select(SOURCE, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_TIME, *quantity, SPLIT))
            self.catalogue = keep(self.lake.read(T.GOLD_ITEM_FEATURES, version=self.catalogue_version))
            self.eligible = keep(topn.eligible_items(self.catalogue.select(SOURCE, ITEM_ID), self.catalogue,
                                                     categories=conf.categories))
            self.catalogue_items = self._catalogue_sizes()
            self.user_sources = keep(self.events.select(USER_ID, SOURCE).distinct())
            self.sources = sorted(r[SOURCE] for r in self.user_sources.select(SOURCE).distinct().collect())
            self.trained: list[Recommender] = []   # neural models, whose checkpoints go once the run is done
            self.rules = rules.source_exclusions(
                self.events, purchased=conf.exclude_purchased, viewed=conf.exclude_viewed,
                overrides={s: Exclusion(**rule.model_dump()) for s, rule in conf.exclusions_by_source.items()})

    # --- the yardsticks ------------------------------------------------------------------------
    def _catalogue_sizes(self) -> dict[str, int]:
        counts = {r[SOURCE]: r["n"] for r in self.eligible.groupBy(SOURCE).agg(F.count(F.lit(1)).alias("n")).collect()}
        if not counts:
            raise RecommenderError(f"no eligible item: {self.lake.located(T.GOLD_ITEM_FEATURES)} has no item in recs.categories "
                                   f"{self.conf.categories}")
        return {**counts, POOLED: sum(counts.values())}

    def _history(self, periods: list[str] | None) -> History:
        """The events and interaction pairs of `periods` (None: every event)."""
        events = self.events if periods is None else self.keep(self.events.where(F.col(SPLIT).isin(*periods)))
        pairs = self.keep(interactions(events, self.weights, self.purchase_quantity))
        return History(events=events, pairs=pairs)

    def _period(self, fit_splits: list[str], held_out: str) -> Period:
        conf, keep = self.conf, self.keep
        history = self._history(fit_splits)
        users = history.pairs.select(USER_ID).distinct().count()
        if not users:
            raise RecommenderError(f"{self.lake.located(T.GOLD_SPLITS)} has no event in the fit periods {fit_splits}")
        truth = rules.relevant_items(self.events.where(F.col(SPLIT) == held_out), conf.truth_event_types)
        if conf.evaluate_users == "warm":
            truth = truth.join(history.pairs.select(USER_ID).distinct(), USER_ID, "left_semi")
        truth, seen = keep(truth), keep(rules.seen_items(history.events))
        excluded = rules.exclusions(history.events, self.rules)
        excluded = keep(excluded) if excluded is not None else None
        truths = {task: keep(rules.task_truth(truth, seen, task)) for task in TASKS}
        exclusions = {NEXT: excluded, DISCOVERY: keep(rules.task_exclusions(excluded, seen, DISCOVERY))}
        yardstick = Yardstick(truth=truths, exclusions=exclusions, user_sources=self.user_sources, k=conf.k,
                              max_excluded={task: topn.most_excluded(truths[task], exclusions[task]) for task in TASKS})
        popular = keep(topn.eligible_items(popular_per_source(history.pairs), self.catalogue,
                                           categories=conf.categories))
        return Period(history, yardstick, popular, keep(item_popularity(history.pairs)), users)

    def _evaluate(self, models: dict[tuple[str, str], Recommender], period: Period
                  ) -> tuple[list[dict], dict[tuple[str, str], np.ndarray]]:
        """Every (label, task)'s lists, filled up per source, scored on `period`'s yardstick.

        The fill-up is each user's 2k most popular items of their source that the task does not
        exclude, computed once per task: a list of at most k items followed by the rest of them
        (`then_fill`) is exactly `topn.with_fallback`'s list. A recent_ease model is listed after
        the others and reuses the lists of its EASE model (`Recommender.follows`)."""
        conf, yardstick = self.conf, period.yardstick
        users = {task: self.keep(yardstick.users(task)) for task in TASKS}
        fills = {task: self.cut(topn.popularity_fallback(
            users[task], period.popular, 2 * conf.k, yardstick.exclusions[task], block_rows=conf.top_n.block_rows,
            max_excluded=yardstick.max_excluded[task])) for task in TASKS}
        lists, by_model = {}, {}
        for (label, task), model in sorted(models.items(), key=lambda entry: entry[1].follows() is not None):
            followed = by_model.get((id(model.follows()), task)) if model.follows() is not None else None
            with cached_frames() as hold:  # the model's own list, read thrice by the fill-up, computed once
                own = hold(model.recommend(users[task], period.history, conf.k, yardstick.exclusions[task])
                           if followed is None else
                           model.recommend_after(followed, users[task], period.history, conf.k, yardstick.exclusions[task]))
                started = time.monotonic()
                lists[(label, task)] = by_model[(id(model), task)] = self.cut(then_fill(own, fills[task], conf.k))
                log.debug("%s on %s: listed in %.1f s", label, task, time.monotonic() - started)
        started = time.monotonic()
        rows, replicates = evaluate(lists, yardstick, catalogue_items=self.catalogue_items,
                                  popularity=period.popularity, total_users=period.users,
                                  replicates=conf.bootstrap_replicates, seed=conf.seed, keep=self.keep)
        log.debug("%d lists scored with their intervals in %.1f s", len(lists), time.monotonic() - started)
        if not any(r["users"] for r in rows):
            log.warning("no user to evaluate: nobody in the held-out period had a %s event%s",
                        "/".join(conf.truth_event_types),
                        " and events in the fit periods (recs.evaluate_users: warm)" if conf.evaluate_users == "warm"
                        else "")
        return rows, replicates

    # --- the models ------------------------------------------------------------------------------
    def _settings(self) -> dict[str, list[dict]]:
        """Per model, the settings tried on validation (values over its conf section): EASE's l2
        always; with recs.search, every combination of the model's grid. [{}]: the conf as it is."""
        conf = self.conf
        grids = conf.search.grids if conf.search.enabled else {}
        settings = {name: grid_settings(grids.get(name, {})) for name in (*conf.baselines, SEQUENCE)}
        ease = [{**setting, "l2": l2} for setting in grid_settings(grids.get(Ease.name, {})) for l2 in conf.ease.l2]
        for name in (Ease.name, RecentThenEase.name):  # recent_ease tries EASE's settings
            if name in settings:
                settings[name] = ease
        return settings

    def _baseline(self, name: str, setting: dict, fitted: FitCache) -> Recommender:
        """The baseline `name` under its conf section with `setting` over it, fitted on
        `fitted.history` once per setting: EASE's settings share a Gram matrix and recent_ease
        reuses the EASE model of its setting."""
        conf, label = self.conf, setting_label(name, setting)
        if label in fitted.models:
            return fitted.models[label]
        if name in (Popularity.name, Recent.name):
            model = Popularity() if name == Popularity.name else Recent()
        elif name == RecentThenEase.name:
            model = RecentThenEase(self._baseline(Ease.name, setting, fitted))
        else:
            section = getattr(conf, name).model_copy(update={k: v for k, v in setting.items() if k != "l2"})
            if name == Cooccurrence.name:
                model = Cooccurrence(section.max_items_per_user, section.min_count)
            elif name == ItemKnn.name:
                model = ItemKnn(conf.history_items, section.max_neighbours)
            elif name == Ease.name:
                model = Ease(conf.history_items, section.max_items, section.max_neighbours, setting["l2"],
                             fitted.grams)
            else:
                model = Als(**section.model_dump(), seed=conf.seed, block_rows=conf.top_n.block_rows)
        started = time.monotonic()
        fitted.models[label] = model.fit(fitted.history, self.eligible, self.keep)
        log.debug("%s: fitted in %.1f s", label, time.monotonic() - started)
        return fitted.models[label]

    def _select(self) -> dict:
        """Fit every setting on the fit periods but validation and score it there: a model with
        several settings on both tasks (each task keeps its best), the others on `next`, where
        the served model is chosen (unless recs.serve names one)."""
        conf, settings = self.conf, self._settings()
        tune_splits = [s for s in conf.fit_splits if s != conf.validation_split]
        period = self._period(tune_splits, conf.validation_split)
        fitted, baselines = {}, FitCache(period.history)
        with self.stage("fit_validation", f"fitting the baselines on {'+'.join(tune_splits)}"):
            for name in conf.baselines:
                for setting in settings[name]:
                    fitted[setting_label(name, setting)] = self._baseline(name, setting, baselines)
        for n, setting in enumerate(settings[SEQUENCE]):
            label = f"{SEQUENCE}.tuning{n + 1 if len(settings[SEQUENCE]) > 1 else ''}"
            fitted[setting_label(SEQUENCE, setting)] = self._sequence(
                tune_splits, setting, label=label, validation=period.yardstick.truth[NEXT]).fit(
                period.history, self.eligible, self.keep)
        labels = {name: [setting_label(name, s) for s in options] for name, options in settings.items()}
        models = {(label, task): fitted[label] for name, options in labels.items() for label in options
                  for task in (TASKS if len(options) > 1 else (NEXT,))}
        with self.stage("validation", f"scoring {len(fitted)} settings on the {conf.validation_split} period"):
            rows, replicates = self._evaluate(models, period)
            best = {name: {task: options[0] if len(options) == 1 else best_setting(rows, options, task)
                           for task in TASKS} for name, options in labels.items()}
            candidates = [best[m.name][NEXT] for m in sorted({fitted[best[n][NEXT]] for n in best},
                                                              key=lambda m: m.complexity)]
            served, steps = (conf.serve, []) if conf.serve != "auto" else champion(replicates, candidates)
        for step in steps:  # the whole challenge in the log file; the console gets the outcome
            log.debug("selection on %s: %s %s %s (NDCG@%d difference %+.4f, 95%% interval [%+.4f, %+.4f])",
                      conf.validation_split, step.challenger, "replaces" if step.won else "does not replace",
                      step.holder, conf.k, step.difference, step.low, step.high)
        if steps:
            log.info("recommend: %s chosen on %s (%d challenge(s); details in the log file)", served,
                     conf.validation_split, len(steps))
        for row in rows:  # the setting labels go back to the model's name; its setting is in params
            row["params"], row[MODEL] = fitted[row[MODEL]].params(), row[MODEL].split(" ")[0]
        chosen = {name: {task: settings[name][labels[name].index(label)] for task, label in per_task.items()}
                  for name, per_task in best.items()}
        epochs = {task: fitted[best[SEQUENCE][task]].best_epoch for task in TASKS}
        return {"settings": chosen, "sequence_epochs": epochs, "served": served.split(" ")[0], "validation_rows": rows}

    def _unselected(self) -> dict:
        if self.conf.serve == "auto":
            raise RecommenderError("recs.serve: auto needs recs.validation_split to choose the served model on")
        first = {"l2": self.conf.ease.l2[0]}   # the conf as it is: EASE's first l2, no grid
        return {"settings": {name: dict.fromkeys(TASKS, first if name in (Ease.name, RecentThenEase.name) else {})
                             for name in self._settings()},
                "sequence_epochs": dict.fromkeys(TASKS, self.conf.sequence.max_epochs), "served": self.conf.serve,
                "validation_rows": []}

    def _report(self, chosen: dict) -> tuple[list[dict], dict[str, dict[str, Recommender]]]:
        """Every model refitted on all fit periods, once per distinct setting its tasks chose, and
        scored on the evaluation period; the fitted models per name and task."""
        conf = self.conf
        period = self._period(list(conf.fit_splits), conf.evaluation_split)
        self.final, baselines = period, FitCache(period.history)
        with self.stage("fit", f"fitting the baselines on {'+'.join(conf.fit_splits)}"):
            reported = {name: _per_task(chosen, name, lambda setting, task, name=name: self._baseline(
                name, setting, baselines)) for name in conf.baselines}
        reported.update(self._neural(period.history, chosen))
        if chosen["served"] not in reported:
            raise RecommenderError(f"recs.serve: {chosen['served']!r} is not a model; the models are {sorted(reported)}")
        with self.stage("evaluate", f"scoring {len(reported)} models on the {conf.evaluation_split} period"):
            rows, _ = self._evaluate({(name, task): model for name, per_task in reported.items()
                                      for task, model in per_task.items()}, period)
        for row in rows:
            row["params"] = reported[row[MODEL]][row[TASK]].params()
        return rows, reported

    def _sequence(self, fit_splits: list[str], setting: dict, **how) -> SequenceRecommender:
        """The sequence model for `fit_splits` under `setting`; `how`: epochs (a refit) or
        validation (early stopping), and its label."""
        training_data = [self.lake.path(T.GOLD_SPLITS), self.data_version, sorted(fit_splits), self.conf.max_items]
        model = SequenceRecommender(self.ctx, self.tracker, self.stage, sources=self.sources,
                                    training_data=training_data, setting=setting, **how)
        self.trained.append(model)
        return model

    def _neural(self, history: History, chosen: dict) -> dict[str, dict[str, Recommender]]:
        """The sequence model refitted per chosen setting for its epochs; the two-tower when
        recs.two_tower.enabled; per name and task."""
        conf, lake = self.conf, self.lake
        epochs = chosen["sequence_epochs"]
        models = {SEQUENCE: _per_task(chosen, SEQUENCE, lambda setting, task: self._sequence(
            list(conf.fit_splits), setting, epochs=epochs[task]).fit(history, self.eligible, self.keep))}
        if not conf.two_tower.enabled:
            return models
        training_data = [lake.path(T.GOLD_SPLITS), self.data_version, lake.path(T.GOLD_ITEM_FEATURES),
                         self.catalogue_version, sorted(conf.fit_splits), conf.max_items, conf.max_feature_values,
                         self.weights]
        tower = TwoTower(self.ctx, self.tracker, self.stage, self.catalogue, name=TWO_TOWER,
                         training_data=training_data, examples_folder=f"{self.scratch}/{TWO_TOWER}")
        models[TWO_TOWER] = dict.fromkeys(TASKS, tower.fit(history, self.eligible, self.keep))
        self.trained.append(tower)
        return models

    # --- serving -------------------------------------------------------------------------------------
    def _serve(self, reported: dict[str, dict[str, Recommender]], chosen: dict) -> dict:
        """The served model's top-k for every user from every event, and the similar items of the
        best model with item-to-item scores; the two-tower's weights are saved as before."""
        conf, lake, keep = self.conf, self.lake, self.keep
        version = self.ctx.run_id
        served = reported[chosen["served"]][NEXT]
        with self.stage("top_n", f"top-{conf.k} of {served.name} for every user and {conf.similar_items.k} similar "
                                 f"items per item"):
            everything = self._history(None)
            excluded = rules.exclusions(everything.events, self.rules)
            excluded = keep(excluded) if excluded is not None else None
            popular = keep(topn.eligible_items(popular_per_source(everything.pairs), self.catalogue,
                                               categories=conf.categories))
            own = served.recommend(self.user_sources, everything, conf.k, excluded)
            generated_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            lists = topn.with_fallback(own, self.user_sources, popular, conf.k, excluded,
                                              block_rows=conf.top_n.block_rows,
                                              max_excluded=topn.most_excluded(self.user_sources, excluded))
            topn.write_top_n(lake, lists, version, generated_at)
            similar_source = self._similar_source(reported, chosen)
            topn.write_similar_items(lake, similar_source.similar_items(conf.similar_items.k), version, generated_at)
            if conf.top_n.keep_versions:
                for name in (T.RECS_TOP_N, T.RECS_SIMILAR_ITEMS):
                    dropped = topn.drop_old_versions(lake, name, conf.top_n.keep_versions)
                    if dropped:
                        log.info("%s: dropped the rows of old model version(s) %s (recs.top_n.keep_versions=%d)",
                                 name, ", ".join(dropped), conf.top_n.keep_versions)
            written = lake.read(T.RECS_TOP_N).where(topn.version_predicate(version))
            listed = written.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(USER_ID).alias("users")).head()
        sequence = reported[SEQUENCE][NEXT]
        model_path = model_uri(lake.root, version)
        sequence.save(model_path, {
            "run_id": self.ctx.run_id, "training_data": lake.located(T.GOLD_SPLITS), "training_data_version": self.data_version,
            "catalogue": lake.located(T.GOLD_ITEM_FEATURES), "catalogue_version": self.catalogue_version,
            "fit_splits": list(conf.fit_splits)})
        self.tracker.metrics({"training_rows": sequence.training_rows, "top_n_rows": listed["rows"],
                              "top_n_users": listed["users"],
                              **{f"seconds_{key}": sec for key, sec in self.stage.seconds.items()}})
        self.tracker.tags({"model_uri": model_path, "served_model": served.name,
                           "similar_items_model": similar_source.name})
        champion = None
        if lake.clickstream == "real":  # a model trained on synthetic data never becomes the served champion
            champion = self.tracker.register_champion(self.ctx.conf.tracking.recommender_model, model_path, {
                "served_model": served.name, "similar_items_model": similar_source.name, "model_version": version,
                "chosen_on": conf.validation_split or "recs.serve"})
        if champion:
            log.debug("MLflow: %s version %s is the champion (%s)", self.ctx.conf.tracking.recommender_model, champion,
                      served.name)
        for model in self.trained:
            checkpoints.clear(model.checkpoint_uri)  # the saved model and the metrics are the result now
        return {"rows": listed["rows"], "users": listed["users"], "model_path": model_path}

    def _similar_source(self, reported: dict[str, dict[str, Recommender]], chosen: dict) -> Recommender:
        """The served model when it has item-to-item scores; else the best such model on
        validation (`next`), or (nothing validated) EASE, or the sequence model without EASE."""
        served = reported[chosen["served"]][NEXT]
        if served.item_to_item:
            return served
        scores = {}
        for r in chosen["validation_rows"]:  # a model's best setting on next
            if r[TASK] == NEXT and r[SOURCE] == POOLED and reported[r[MODEL]][NEXT].item_to_item:
                scores[r[MODEL]] = max(scores.get(r[MODEL], 0.0), r[NDCG] or 0.0)
        if scores:
            return reported[max(scores, key=scores.get)][NEXT]
        return reported[Ease.name if Ease.name in reported else SEQUENCE][NEXT]

    # --- records ---------------------------------------------------------------------------------------
    def _track_params(self) -> None:
        conf = self.conf
        self.tracker.params({"k": conf.k, "fit_splits": list(conf.fit_splits), "validation_split": conf.validation_split,
                             "evaluation_split": conf.evaluation_split, "serve": conf.serve,
                             "truth_event_types": list(conf.truth_event_types), "evaluate_users": conf.evaluate_users,
                             "exclusions": {s: vars(r) for s, r in self.rules.items()}, "categories": conf.categories,
                             "ease_l2": conf.ease.l2, "ease_max_items": conf.ease.max_items,
                             "search_grids": conf.search.grids if conf.search.enabled else None,
                             "itemknn_max_neighbours": conf.itemknn.max_neighbours, "history_items": conf.history_items,
                             **{f"sequence_{key}": value for key, value in conf.sequence.model_dump().items()},
                             **{f"two_tower_{key}": value for key, value in conf.two_tower.model_dump().items()},
                             **{f"als_{key}": value for key, value in conf.als.model_dump().items()}})
        self.tracker.tags({"training_data": self.lake.located(T.GOLD_SPLITS), "training_data_version": self.data_version,
                           "catalogue_version": self.catalogue_version, "model_version": self.ctx.run_id,
                           "conf_hash": self.ctx.fingerprint})

    def _metrics_row(self, row: dict, split: str, chosen: dict, measured_at) -> dict:
        served = split == self.conf.evaluation_split and row[MODEL] == chosen["served"]
        return {"run_id": self.ctx.run_id, MODEL_VERSION: self.ctx.run_id, "training_data_version": self.data_version,
                "evaluation_split": split, "k": self.conf.k, "served": served, "measured_at": measured_at,
                **{key: value for key, value in row.items() if key != "params"},
                "params": json.dumps(row["params"], sort_keys=True)}

    def _outcome(self, rows: list[dict], chosen: dict, listed: dict, reported) -> Outcome:
        def pooled(model: str, task: str) -> str:
            row = next((r for r in rows if r[MODEL] == model and r[TASK] == task and r[SOURCE] == POOLED), None)
            return "n/a" if row is None or row[NDCG] is None else f"{row[NDCG]:.3f}"

        conf, served = self.conf, chosen["served"]
        users = {r[TASK]: r["users"] for r in rows if r[SOURCE] == POOLED}
        return Outcome(
            rows_in=reported[SEQUENCE][NEXT].training_rows, rows_out=listed["rows"],
            message=f"served {served}: NDCG@{conf.k} on {conf.evaluation_split} next {pooled(served, NEXT)} "
                    f"({users.get(NEXT, 0)} users), discovery {pooled(served, DISCOVERY)} ({users.get(DISCOVERY, 0)}); "
                    f"top-{conf.k} for {listed['users']} users")


def _per_task(chosen: dict, name: str, fit) -> dict[str, Recommender]:
    """`name`'s model per task: `fit(setting, task)` once per distinct setting the tasks chose."""
    fitted, per_task = {}, {}
    for task in TASKS:
        setting = chosen["settings"][name][task]
        key = json.dumps([setting, chosen["sequence_epochs"][task] if name == SEQUENCE else None], sort_keys=True)
        if key not in fitted:
            fitted[key] = fit(setting, task)
        per_task[task] = fitted[key]
    return per_task


RECOMMEND = Job(
    name="recommend",
    inputs=(T.GOLD_SPLITS, T.GOLD_ITEM_FEATURES),
    outputs=(T.RECS_TRAINING_EXAMPLES, T.RECS_METRICS, T.RECS_TOP_N, T.RECS_SIMILAR_ITEMS),
    conf_keys=("recs", "gold.event_weights", "gold.purchase_quantity"),
    body=recommend,
    runs_on_synthetic=True,
    description="fit and evaluate the recommenders and baselines on two tasks, choose the served model on "
                "validation, write recs.metrics, recs.top_n and recs.similar_items",
)
