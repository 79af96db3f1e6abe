"""Recommend: gold.splits + gold.item_features -> a two-tower retrieval model trained on Horovod
ranks and three baselines (popularity, item-to-item co-occurrence, implicit ALS), all fitted on
the same periods (`recs.fit_splits`) and evaluated on the same held-out period
(`recs.evaluation_split`) -> recs.metrics; then the two-tower's top-N for every user
(recs.top_n) and its similar items (recs.similar_items), written for this model version.

Rules, the same for evaluation and serving: no item the user bought (`recs.exclude_purchased`)
or viewed (`recs.exclude_viewed`), only items of the current catalogue (gold.item_features)
within `recs.categories`; a user the model knows nothing about gets the most popular items, and
a list shorter than k is filled up from them; an item that is new and has no known feature is not
scored by the two-tower (its vector says nothing). At evaluation the users' histories, exclusions
and popularity come from the fit periods only; for serving, from every event.

Augmentation (`recs.augmentation`): when synthetic.behavior exists, the same two-tower is also
trained on the real examples plus pseudo-users made from the synthetic sessions
(`recsynth.rec.augment`) and evaluated beside the real-only model under the same rules, as
`two_tower_augmented`; the difference is reported whichever way it goes. The real-only model is
the one served.

Validation: the job tunes no hyper-parameter, so with the default fit_splits [train, validation]
the validation period is training data and the test period stays the untouched yardstick. To
tune by hand, set fit_splits [train] and evaluation_split validation, and look at test last.
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.errors import RecommenderError
from recsynth.etl.gold import interactions
from recsynth.runtime.cache import cached_frames
from recsynth.runtime.runs import Job, Outcome, RunContext
from recsynth.runtime.stages import Stages
from recsynth.runtime.tracking import Tracker, tracked_run
from recsynth.rec import features as feat
from recsynth.rec.augment import synthetic_events
from recsynth.rec import rules
from recsynth.rec import topn
from recsynth.rec.baselines import cooccurrence, fit_als
from recsynth.rec.columns import EVENT_TIME, EVENT_TYPE, ITEM_ID, MODEL_VERSION, SCORE, USER_ID, WEIGHT
from recsynth.rec.metrics import METRICS, N_USERS, item_popularity, ranking_metrics
from recsynth.rec.two_tower import (
    TwoTowerParams, item_vectors, model_uri, params_dict, save_model, train_rank, user_vectors,
)
from recsynth.train import checkpoints, progress
from recsynth.train.launcher import train_on_ranks
from recsynth.train.shards import check_shardable, current_files

log = logging.getLogger(__name__)

MODELS = ("popularity", "cooccurrence", "als", "two_tower")
AUGMENTED = "two_tower_augmented"   # evaluated too when synthetic.behavior exists (recs.augmentation)
SPLIT = "split"
METRICS_SCHEMA = T.schema(T.RECS_METRICS)


def _train(ctx: RunContext, tracker: Tracker, files: list[str], params: TwoTowerParams, vocab_sizes: dict,
           checkpoint_uri: str, model: str):
    """Train on Horovod ranks, reporting each epoch as it ends; rank 0's result and the rows trained on."""
    prefix = "" if model == "two_tower" else f"{model}."

    def on_epoch(record: dict) -> None:
        log.log(progress.console_level(record["epoch"], record["epochs"]),
                "%s epoch %d/%d: loss %.4f (%.1f s)", model, record["epoch"], record["epochs"], record["loss"], record["seconds"])
        tracker.metrics({f"{prefix}loss": record["loss"], f"{prefix}epoch_seconds": record["seconds"]}, step=record["epoch"])

    return train_on_ranks(ctx.spark, train_rank, {"files": files, "params": params_dict(params), "vocab_sizes": vocab_sizes},
                          num_proc=ctx.conf.recs.num_proc, attempts=ctx.conf.ops.training_attempts,
                          checkpoint_uri=checkpoint_uri, checkpoint_every=ctx.conf.recs.checkpoint_every,
                          on_epoch=on_epoch, model="two-tower")


def _fit_two_tower(ctx: RunContext, tracker: Tracker, stage: Stages, model: str, events, vocabularies, indices,
                   params: TwoTowerParams, vocab_sizes: dict, training_data: list):
    """`events` (user_id, item_id, event_time) -> training examples in recs.training_examples (the
    Petastorm shards) -> the two-tower on Horovod ranks; rank 0's result, rows and checkpoint folder."""
    conf, lake = ctx.conf.recs, ctx.lake
    with stage(f"examples_{model}", f"writing the training examples of {model}"):
        examples = feat.training_examples(events, vocabularies, indices, conf.history_length)
        lake.overwrite(T.RECS_TRAINING_EXAMPLES, examples.repartition(2 * conf.num_proc))
        files = current_files(lake.read(T.RECS_TRAINING_EXAMPLES))
    check_shardable(files, conf.num_proc, T.RECS_TRAINING_EXAMPLES)
    checkpoint_uri = checkpoints.folder(lake.root, "recommender", training_data, vocab_sizes, params_dict(params),
                                        conf.num_proc)
    with stage(f"train_{model}", f"training {model} on {conf.num_proc} Horovod rank(s)"):
        chief, rows = _train(ctx, tracker, files, params, vocab_sizes, checkpoint_uri, model)
    return chief, rows, checkpoint_uri


def _augmentation_events(ctx: RunContext, fit_events, catalogue, keep):
    """Real fit events plus pseudo-users from synthetic.behavior (user_id, item_id, event_time), and
    the synthetic table's version; None when augmentation is off or there is no synthetic data."""
    conf, lake = ctx.conf.recs, ctx.lake
    if not conf.augmentation.enabled:
        return None
    synthetic_version = lake.version(T.SYNTHETIC_BEHAVIOR)
    if synthetic_version is None:
        log.warning("recs.augmentation: %s does not exist (run recsynth synthesize); only real data is used",
                    T.SYNTHETIC_BEHAVIOR)
        return None
    real = fit_events.select(USER_ID, ITEM_ID, EVENT_TIME)
    start = real.agg(F.min(EVENT_TIME)).head()[0]
    synthetic = keep(synthetic_events(lake.read(T.SYNTHETIC_BEHAVIOR, version=synthetic_version), real, catalogue,
                                      seed=conf.seed, start_time=start, slots=conf.augmentation.slots,
                                      max_items_per_session=conf.augmentation.max_items_per_session))
    counts = synthetic.agg(F.count(F.lit(1)).alias("events"), F.countDistinct(USER_ID).alias("users")).head()
    log.info("recs.augmentation: %d synthetic events of %d pseudo-users from %s v%d", counts["events"],
             counts["users"], T.SYNTHETIC_BEHAVIOR, synthetic_version)
    if not counts["events"]:
        log.warning("recs.augmentation: no synthetic session matched a catalogue category; only real data is used")
        return None
    return real.unionByName(synthetic), synthetic_version


def recommend(ctx: RunContext) -> Outcome:
    with tracked_run(ctx.conf, "recommend", ctx.run_id) as tracker, cached_frames() as keep:
        return _recommend(ctx, tracker, keep)


def _recommend(ctx: RunContext, tracker: Tracker, keep) -> Outcome:
    conf, lake, spark = ctx.conf.recs, ctx.lake, ctx.spark
    version = ctx.run_id
    data_version = lake.version(T.GOLD_SPLITS)
    catalogue_version = lake.version(T.GOLD_ITEM_FEATURES)
    splits = lake.read(T.GOLD_SPLITS, version=data_version)
    quantity = ["quantity"] if "quantity" in splits.columns else []  # gold.splits of lakes built before quantities
    events = keep(splits.select(T.SOURCE, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_TIME, *quantity, SPLIT))
    catalogue = keep(lake.read(T.GOLD_ITEM_FEATURES, version=catalogue_version))
    fit_events = events.where(F.col(SPLIT).isin(*conf.fit_splits))
    weights = dict(ctx.conf.gold.event_weights)
    purchase_quantity = ctx.conf.gold.purchase_quantity
    stage = Stages("recommend")

    # --- what every model shares: the fit pairs, the eligible catalogue, the rules --------------
    with stage("inputs", "preparing interactions, the eligible catalogue and the evaluation truth"):
        fit_pairs = keep(interactions(fit_events, weights, purchase_quantity).select(USER_ID, ITEM_ID, WEIGHT))
        eligible = keep(topn.eligible_items(catalogue.select(ITEM_ID), catalogue, categories=conf.categories))
        catalogue_items = eligible.count()
        if not catalogue_items:
            raise RecommenderError(f"no eligible item: {T.GOLD_ITEM_FEATURES} has no item in recs.categories "
                                   f"{conf.categories}")
        fit_users = fit_pairs.select(USER_ID).distinct().count()
        if not fit_users:
            raise RecommenderError(f"{T.GOLD_SPLITS} has no event in the fit periods {list(conf.fit_splits)}")
        fit_popularity = item_popularity(fit_pairs)
        popular_then = keep(_popular(fit_popularity, catalogue, conf.categories))
        truth = rules.relevant_items(events.where(F.col(SPLIT) == conf.evaluation_split), conf.truth_event_types)
        if conf.evaluate_users == "warm":
            truth = truth.join(fit_pairs.select(USER_ID).distinct(), USER_ID, "left_semi")
        truth = keep(truth)
        evaluated = keep(truth.select(USER_ID).distinct())
        excluded_then = rules.exclusions(fit_events, purchased=conf.exclude_purchased, viewed=conf.exclude_viewed)
        excluded_then = keep(excluded_then) if excluded_then is not None else None

    # --- the two-tower model: features, Petastorm shards, Horovod training ------------------------
    with stage("features", "building the vocabularies"):
        built = feat.build_vocabularies(fit_events, catalogue, max_items=conf.max_items,
                                        max_values=conf.max_feature_values)
        vocabularies = feat.Vocabularies(items=keep(built.items),
                                         features={name: keep(frame) for name, frame in built.features.items()})
        vocab_sizes = vocabularies.sizes()
        indices = keep(feat.item_feature_indices(catalogue, vocabularies))

    params = TwoTowerParams(**conf.two_tower.model_dump(), history_length=conf.history_length, seed=conf.seed)
    tracker.params({**params_dict(params), "num_proc": conf.num_proc, "k": conf.k, "fit_splits": list(conf.fit_splits),
                    "evaluation_split": conf.evaluation_split, "truth_event_types": list(conf.truth_event_types),
                    "evaluate_users": conf.evaluate_users, "exclude_purchased": conf.exclude_purchased,
                    "exclude_viewed": conf.exclude_viewed, "categories": conf.categories, "max_items": conf.max_items,
                    "max_feature_values": conf.max_feature_values,
                    **{f"als_{key}": value for key, value in conf.als.model_dump().items()},
                    **{f"cooccurrence_{key}": value for key, value in conf.cooccurrence.model_dump().items()}})
    tracker.tags({"training_data": T.GOLD_SPLITS, "training_data_version": data_version,
                  "catalogue_version": catalogue_version, "model_version": version, "conf_hash": ctx.fingerprint})
    training_data = [lake.path(T.GOLD_SPLITS), data_version, lake.path(T.GOLD_ITEM_FEATURES), catalogue_version,
                     sorted(conf.fit_splits), conf.max_items, conf.max_feature_values, weights]
    chief, training_rows, checkpoint_uri = _fit_two_tower(ctx, tracker, stage, "two_tower", fit_events, vocabularies,
                                                          indices, params, vocab_sizes, training_data)
    model_weights = chief["weights"]
    scored_items = feat.known_items(indices).join(eligible, ITEM_ID, "left_semi")
    item_vecs = keep(item_vectors(spark, model_weights, params, scored_items, vocab_sizes=vocab_sizes))
    models, checkpoint_uris = list(MODELS), [checkpoint_uri]
    augmented = _augmentation_events(ctx, fit_events, catalogue, keep)
    if augmented:  # the same model, vocabulary and rules; only the training examples differ
        augmented_events, synthetic_version = augmented
        tracker.tags({"synthetic_data": T.SYNTHETIC_BEHAVIOR, "synthetic_data_version": synthetic_version})
        augmented_chief, augmented_rows, augmented_checkpoint = _fit_two_tower(
            ctx, tracker, stage, AUGMENTED, augmented_events, vocabularies, indices, params, vocab_sizes,
            [*training_data, T.SYNTHETIC_BEHAVIOR, synthetic_version, conf.augmentation.model_dump()])
        augmented_item_vecs = keep(item_vectors(spark, augmented_chief["weights"], params, scored_items,
                                                vocab_sizes=vocab_sizes))
        models.append(AUGMENTED)
        tracker.metrics({f"{AUGMENTED}.training_rows": augmented_rows})
        checkpoint_uris.append(augmented_checkpoint)

    # --- every model on the same users, rules and truth -------------------------------------------
    with stage("baselines", "fitting popularity, co-occurrence and ALS"):
        als = fit_als(fit_pairs, rank=conf.als.rank, reg_param=conf.als.reg_param, alpha=conf.als.alpha,
                      max_iter=conf.als.max_iter, seed=conf.seed)
        als_items = topn.eligible_items(als.item_factors, catalogue, categories=conf.categories)
    block_rows = conf.top_n.block_rows
    histories_then = feat.known_histories(feat.user_histories(fit_events, vocabularies, conf.history_length))

    def _two_tower_lists(weights, items):
        users = user_vectors(spark, weights, params, histories_then.join(evaluated, USER_ID, "left_semi"),
                             vocab_sizes=vocab_sizes)
        return topn.top_n(users, items, excluded_then, conf.k, block_rows=block_rows)

    primary = {
        "popularity": lambda: topn.popularity_fallback(evaluated, popular_then, conf.k, excluded_then,
                                                       block_rows=block_rows),
        "cooccurrence": lambda: cooccurrence(
            fit_pairs, evaluated, conf.k, exclude_seen=False, max_items_per_user=conf.cooccurrence.max_items_per_user,
            min_count=conf.cooccurrence.min_count, exclusions=excluded_then, items=eligible),
        "als": lambda: topn.top_n(als.user_factors.join(evaluated, USER_ID, "left_semi"), als_items, excluded_then,
                                  conf.k, block_rows=block_rows),
        "two_tower": lambda: _two_tower_lists(model_weights, item_vecs),
    }
    if augmented:
        primary[AUGMENTED] = lambda: _two_tower_lists(augmented_chief["weights"], augmented_item_vecs)
    scores = {}
    with stage("evaluate", f"evaluating {len(models)} models at k={conf.k} on the {conf.evaluation_split} period"):
        for model in models:
            own = keep(primary[model]())
            lists = keep(topn.with_fallback(own, evaluated, popular_then, conf.k, excluded_then, block_rows=block_rows))
            scores[model] = ranking_metrics(lists, truth, conf.k, catalogue_size=catalogue_items,
                                            item_popularity=fit_popularity, total_users=fit_users)
            log.debug("%s: %s", model, ", ".join(f"{name} {_fmt(value)}" for name, value in scores[model].items()))
    if not scores["popularity"]["users"]:
        log.warning("no user to evaluate: nobody in the %s period had a %s event%s; the metrics are empty",
                    conf.evaluation_split, "/".join(conf.truth_event_types),
                    " and events in the fit periods (recs.evaluate_users: warm)" if conf.evaluate_users == "warm" else "")
    measured_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [{"run_id": ctx.run_id, "model": model, MODEL_VERSION: version, "training_data_version": data_version,
             "evaluation_split": conf.evaluation_split, "k": conf.k, **{m: scores[model][m] for m in METRICS},
             "catalogue_coverage": scores[model]["catalogue_coverage"], "novelty": scores[model]["novelty"],
             "users": scores[model]["users"], "catalogue_items": catalogue_items, "measured_at": measured_at}
            for model in models]
    lake.append(T.RECS_METRICS, spark.createDataFrame(rows, METRICS_SCHEMA))
    tracker.metrics({f"{model}.{name}": value for model in models for name, value in scores[model].items()})

    model_path = model_uri(lake.root, version)
    save_model(model_path, model_weights, params, vocabularies, vocab_sizes, {
        "run_id": ctx.run_id, "training_data": T.GOLD_SPLITS, "training_data_version": data_version,
        "catalogue": T.GOLD_ITEM_FEATURES, "catalogue_version": catalogue_version, "fit_splits": list(conf.fit_splits),
        "training_rows": training_rows, "history": chief["history"], "metrics": scores,
        "saved_at": dt.datetime.utcnow().isoformat()})

    # --- serving: every user, from every event -------------------------------------------------------
    with stage("top_n", f"top-{conf.k} for every user and {conf.similar_items.k} similar items per item"):
        users = events.select(USER_ID).distinct()
        excluded_now = rules.exclusions(events, purchased=conf.exclude_purchased, viewed=conf.exclude_viewed)
        excluded_now = keep(excluded_now) if excluded_now is not None else None
        popular_now = keep(_popular(item_popularity(interactions(events, weights, purchase_quantity)), catalogue, conf.categories))
        histories_now = feat.known_histories(feat.user_histories(events, vocabularies, conf.history_length))
        own = keep(topn.top_n(user_vectors(spark, model_weights, params, histories_now, vocab_sizes=vocab_sizes),
                              item_vecs, excluded_now, conf.k, block_rows=block_rows))
        generated_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        topn.write_top_n(lake, topn.with_fallback(own, users, popular_now, conf.k, excluded_now, block_rows=block_rows),
                         version, generated_at)
        topn.write_similar_items(lake, topn.similar_items(item_vecs, conf.similar_items.k, block_rows=block_rows),
                                 version, generated_at)
        if conf.top_n.keep_versions:
            for name in (T.RECS_TOP_N, T.RECS_SIMILAR_ITEMS):
                dropped = topn.drop_old_versions(lake, name, conf.top_n.keep_versions)
                if dropped:
                    log.info("%s: dropped the rows of old model version(s) %s (recs.top_n.keep_versions=%d)",
                             name, ", ".join(dropped), conf.top_n.keep_versions)
        written = lake.read(T.RECS_TOP_N).where(topn.version_predicate(version))
        listed = written.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(USER_ID).alias("users")).head()
    tracker.metrics({"training_rows": training_rows, "top_n_rows": listed["rows"], "top_n_users": listed["users"],
                     **{f"seconds_{key}": sec for key, sec in stage.seconds.items()}})
    tracker.tags({"model_uri": model_path})
    for uri in checkpoint_uris:
        checkpoints.clear(uri)  # the versioned model (and the metrics) are the durable result now
    summary = ", ".join(f"{m} {_fmt(scores[m]['ndcg_at_k'])}" for m in models)
    return Outcome(rows_in=training_rows, rows_out=listed["rows"],
                   message=f"model {version}: NDCG@{conf.k} on {conf.evaluation_split} ({scores['two_tower']['users']} "
                           f"users) {summary}; top-{conf.k} for {listed['users']} users; model {model_path}")


def _popular(popularity, catalogue, categories):
    """(item_id, score): the eligible items by distinct users (`item_popularity`), the fallback's input."""
    return topn.eligible_items(popularity.select(ITEM_ID, F.col(N_USERS).alias(SCORE)), catalogue, categories=categories)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


RECOMMEND = Job(
    name="recommend",
    inputs=(T.GOLD_SPLITS, T.GOLD_ITEM_FEATURES),
    optional_inputs=(T.SYNTHETIC_BEHAVIOR,),
    outputs=(T.RECS_TRAINING_EXAMPLES, T.RECS_METRICS, T.RECS_TOP_N, T.RECS_SIMILAR_ITEMS),
    conf_keys=("recs", "gold.event_weights", "gold.purchase_quantity"),
    body=recommend,
    description="train and evaluate the recommender and its baselines, write recs.metrics, recs.top_n and "
                "recs.similar_items",
)
