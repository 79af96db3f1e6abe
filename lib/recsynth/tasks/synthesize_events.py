"""Synthesize events: the fit periods of gold.splits (recs.fit_splits: never the period the
recommenders are tested on) -> a clickstream generator -> synthetic.events, published only if
the per-person privacy gates pass (otherwise the previous version stays and the run fails).

Every generator fills in one plan of synthetic people and sessions drawn from real ones
(`clickstream.plan_sessions`: each session with a real template's length, times and context -
top category and purchase - or, with `clickstream.sessions: gan`, a row of the tabular GAN's
synthetic.behavior in place of the real template, `clickstream.generated_sessions`): the Markov chain or its independent floor walk it, the sequence
generator (trained here on Horovod ranks, `tasks.clickstream_generator`) writes it person by
person, reading each person's earlier sessions and conditioned on each session's context; the
stand-ins it writes for rare items become catalogue items (`recsynth.synth.rare_items`). How
often the written sessions have their planned context is measured for every generator.

The generator learns from the training people only: a holdout of people (split by person, the
same draw as the tabular GAN's, `clickstream.holdout_fraction`) is the privacy yardstick
(`recsynth.synth.person_privacy`). The run's figures go to synthetic.events_quality and MLflow:
session lengths, item popularity (Gini) and the funnel beside the real ones, how many moves
from one item to the next are moves real people took and how many stay on the item (beside a
holdout person's), the distinctive
paths found per side and the user-level membership AUC."""
from __future__ import annotations

import logging

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.errors import ConfigError, GateFailed
from recsynth.runtime.cache import cached_frames, checkpointed_frames
from recsynth.runtime.runs import Job, Outcome, RunContext
from recsynth.runtime.stages import Stages
from recsynth.runtime.tracking import tracked_run
from recsynth.synth import clickstream_fidelity as shape_of
from recsynth.synth.clickstream import (DATING, as_events, fit_markov, fit_sessions, generated_sessions, plan_sessions,
                                        session_contexts, session_steps, shared_items, timed, walk_chain)
from recsynth.synth.person_privacy import assess_people
from recsynth.synth.privacy import split_by_person
from recsynth.synth.rare_items import filled_stand_ins, same_item_shares, stand_in_pools
from recsynth.synth.sequence_walker import write_sequences
from recsynth.tasks.clickstream_generator import WRITING_SETTINGS, train_generator

log = logging.getLogger(__name__)

QUALITY_SCHEMA = T.schema(T.SYNTHETIC_EVENTS_QUALITY)
EVENT_COLUMNS = ("source", "user_id", "session_id", "item_id", "event_type", "event_time")


def _people(events) -> int:
    return events.select("source", "user_id").distinct().count()


def _gan_sessions(lake, real, conf, keep):
    """The plan's templates from synthetic.behavior's current rows (`clickstream.generated_sessions`);
    the rows it cannot date are counted in the log."""
    if lake.version(T.SYNTHETIC_BEHAVIOR) is None:
        raise ConfigError(f"clickstream.sessions: gan plans sessions from {T.SYNTHETIC_BEHAVIOR}, which does not exist "
                          "yet: run `recsynth synthesize` first, or set clickstream.sessions: real")
    behavior = lake.read(T.SYNTHETIC_BEHAVIOR)
    if "source" not in behavior.columns and (sources := real.templates[1].count()) > 1:   # a row per source
        raise ConfigError(f"clickstream.sessions: gan plans sessions from {T.SYNTHETIC_BEHAVIOR}, whose GAN learnt no "
                          f"source column (synth.rows_where keeps one source's rows), but the fit periods hold {sources} "
                          "sources: run the clickstream on that source's lake, or learn `source` in synth.categorical")
    sessions, left_out = generated_sessions(behavior, real, max_session_events=conf.max_session_events,
                                            seed=conf.draws, keep=keep)
    dropped = left_out.count()
    if dropped:
        log.warning("%d rows of %s are not planned: no event, or no real session of their source to date them",
                    dropped, T.SYNTHETIC_BEHAVIOR)
    dated_by = {r["dated_by"]: r["count"] for r in sessions.templates[0].groupBy("dated_by").count().collect()}  # <= 3
    log.info("%s rows dated by a real session of their source, %s", T.SYNTHETIC_BEHAVIOR,
             ", ".join(f"{name}: {dated_by.get(name, 0)}" for name in DATING))
    return sessions


def synthesize_events(ctx: RunContext) -> Outcome:
    conf, lake, spark = ctx.conf.clickstream, ctx.lake, ctx.spark
    if refusal := ctx.conf.gan_plans_refusal:
        raise ConfigError(refusal)
    stage = Stages("synthesize_events")
    data_version = lake.version(T.GOLD_SPLITS)
    scratch = f"{lake.root}/_scratch/synthesize_events/{ctx.run_id}"
    with tracked_run(ctx.conf, "synthesize_events", ctx.run_id) as tracker, cached_frames() as keep, \
            checkpointed_frames(spark, scratch) as cut:
        with stage("inputs", f"splitting the people of {'+'.join(ctx.conf.recs.fit_splits)} into training and holdout"):
            fit = lake.read(T.GOLD_SPLITS, version=data_version).where(
                F.col("split").isin(*ctx.conf.recs.fit_splits)).select(*EVENT_COLUMNS)
            train, holdout = (keep(side) for side in split_by_person(fit, conf.holdout_fraction))
            people = {"training": _people(train), "holdout": _people(holdout)}
        tracker.params({"generator": conf.generator, "sessions": conf.sessions, "users_multiplier": conf.users_multiplier,
                        **{name: getattr(conf.sequence, name) for name in WRITING_SETTINGS},
                        "avoid_distinctive_paths": conf.sequence.avoid_distinctive_paths,
                        "max_session_events": conf.max_session_events, "min_people": conf.min_people,
                        "holdout_fraction": conf.holdout_fraction, "seed": conf.seed, "draw_seed": conf.draws,
                        "fit_splits": list(ctx.conf.recs.fit_splits)})
        tracker.tags({"training_data": T.GOLD_SPLITS, "training_data_version": data_version})
        catalogue_version = lake.version(T.GOLD_ITEM_FEATURES)
        catalogue = keep(lake.read(T.GOLD_ITEM_FEATURES, version=catalogue_version).select(
            "source", "item_id", "price", F.col("category_l1").alias("category")))
        with stage("fit", f"counting the steps of {people['training']} training people's sessions"):
            if conf.generator == "sequence":
                real_steps = keep(session_steps(train))
                shared = keep(shared_items(real_steps, conf.min_people))   # the generator's items; the fill's rare ones
                contexts = keep(session_contexts(real_steps, catalogue))
                sessions = fit_sessions(real_steps, contexts, max_session_events=conf.max_session_events, keep=keep)
            else:
                chain = fit_markov(train, catalogue, min_people=conf.min_people,
                                   max_session_events=conf.max_session_events, keep=keep,
                                   independent=conf.generator == "independent")
                sessions, fill = chain.sessions, lambda walks: walk_chain(walks, chain.item_side)
        if conf.sessions == "gan":
            sessions = _gan_sessions(lake, sessions, conf, keep)
        if conf.generator == "sequence":
            generator, sources, categories = train_generator(
                ctx, tracker, stage, real_steps, contexts, catalogue, shared, scratch=scratch, keep=keep,
                training_data=[T.GOLD_SPLITS, data_version, list(ctx.conf.recs.fit_splits), conf.holdout_fraction,
                               conf.min_people, T.GOLD_ITEM_FEATURES, catalogue_version])
            fill = lambda walks: write_sequences(walks, generator, sources, categories)   # noqa: E731
            if conf.sequence.rare_items:
                known = spark.createDataFrame([(i,) for i in generator.item_ids if i is not None], "item_id string")
                pools = tuple(keep(side) for side in stand_in_pools(catalogue, known))
                same = keep(same_item_shares(real_steps, shared, catalogue))
                fill = lambda walks: filled_stand_ins(write_sequences(walks, generator, sources, categories),  # noqa: E731
                                                      pools, same, conf.draws)
        with stage("sample", f"writing the sessions of {conf.users_multiplier:g} synthetic people per training person"):
            walks = keep(plan_sessions(sessions, users_multiplier=conf.users_multiplier, seed=conf.draws,
                                       prefix=f"syn{conf.draws}"))
            synthetic = cut(as_events(timed(fill(walks)), catalogue.select("source", "item_id", "price")))
            produced = synthetic.agg(F.count(F.lit(1)).alias("events"),
                                     F.countDistinct("source", "user_id").alias("people")).head()
        with stage("privacy", "comparing the training and holdout people's distinctive paths with the synthetic ones"):
            privacy = conf.privacy
            report = assess_people(train, holdout, synthetic, sizes=tuple(privacy.ngram_sizes),
                                   min_support=privacy.min_ngram_support, query_people=privacy.query_people,
                                   seed=conf.seed, keep=keep)
        with stage("shape", "session lengths, item popularity and the funnel beside the real ones"):
            real_lengths, synthetic_lengths = shape_of.session_length_counts(train), shape_of.session_length_counts(synthetic)
            size = produced["people"] / max(people["training"], 1)   # Gini at the smaller side's number of people
            real = shape_of.shape(train, real_lengths, min(1.0, size), conf.seed)
            real_funnel_interval = shape_of.funnel_intervals(train, conf.seed)
            fake = shape_of.shape(synthetic, synthetic_lengths, min(1.0, 1.0 / size) if size else 1.0, conf.seed)
            agreement = shape_of.context_agreement(walks, session_contexts(synthetic, catalogue))
            moves = shape_of.move_shares(session_steps(train), {
                "synthetic": session_steps(synthetic), "holdout": session_steps(holdout)}, conf.min_people)
        failures = report.failures(privacy.max_excess_ngram_share, privacy.max_membership_auc)
        row = {"run_id": ctx.run_id, "model_version": ctx.run_id, "generator": conf.generator,
               "training_data_version": data_version, "training_people": people["training"],
               "holdout_people": people["holdout"], "synthetic_people": produced["people"],
               "synthetic_events": produced["events"], "real_mean_session_events": real.mean_session_events,
               "synthetic_mean_session_events": fake.mean_session_events,
               "session_events_ks": shape_of.ks_distance(real_lengths, synthetic_lengths),
               "real_item_gini": real.item_gini, "synthetic_item_gini": fake.item_gini,
               "real_funnel": real.funnel, "synthetic_funnel": fake.funnel,
               "real_funnel_low": {k: low for k, (low, _) in real_funnel_interval.items()},
               "real_funnel_high": {k: high for k, (_, high) in real_funnel_interval.items()},
               **{column: {str(n): v for n, v in shares.items()} for column, shares in (
                   ("train_ngram_share", report.paths.train_gram_share),
                   ("holdout_ngram_share", report.paths.holdout_gram_share),
                   ("train_person_share", report.paths.train_person_share),
                   ("holdout_person_share", report.paths.holdout_person_share))},
               "membership_auc": report.membership_auc, "gates_passed": not failures, "measured_at": ctx.started_at,
               **{f"planned_{figure}_share": share for figure, share in agreement.items()},
               **{f"{side}_{kind}_move_share": share for side, shares in moves.items() for kind, share in shares.items()}}
        log.debug("synthetic clickstream %s: %s", ctx.run_id, row)
        tracker.metrics({key: value for key, value in row.items() if isinstance(value, float)})
        tracker.tags({"gates": "; ".join(failures) or "passed"})
        if failures:
            raise GateFailed(f"gate failed, {T.SYNTHETIC_EVENTS} not published (run {ctx.run_id}): " + "; ".join(failures))
        lake.overwrite(T.SYNTHETIC_EVENTS, synthetic.select(
            *synthetic.columns, F.lit(ctx.run_id).alias("model_version"),
            F.lit(data_version).cast("bigint").alias("training_data_version")))
        lake.append(T.SYNTHETIC_EVENTS_QUALITY, spark.createDataFrame([row], QUALITY_SCHEMA), add_columns=True)
    return Outcome(rows_in=people["training"], rows_out=produced["events"],
                   message=f"{produced['events']} events of {produced['people']} synthetic people; sessions "
                           f"{fake.mean_session_events:.1f} events (real {real.mean_session_events:.1f}), item Gini "
                           f"{fake.item_gini:.2f} (real {real.item_gini:.2f}), planned top category kept in "
                           f"{agreement['category']:.0%} of sessions, purchase in {agreement['purchase']:.0%} (their number in "
                           f"{agreement['purchase_count']:.0%}) and cart in {agreement['cart']:.0%} (in "
                           f"{agreement['cart_count']:.0%}), moves real people took "
                           f"{moves['synthetic']['common']:.0%} and to the same item {moves['synthetic']['repeat']:.0%} "
                           f"(a holdout person's: {moves['holdout']['common']:.0%} and {moves['holdout']['repeat']:.0%}), "
                           f"membership AUC {report.membership_auc:.2f}")


SYNTHESIZE_EVENTS = Job(
    name="synthesize_events",
    inputs=(T.GOLD_SPLITS, T.GOLD_ITEM_FEATURES),
    inputs_under=lambda conf: (T.SYNTHETIC_BEHAVIOR,) if conf.clickstream.sessions == "gan" else (),
    outputs=(T.SYNTHETIC_EVENTS, T.SYNTHETIC_EVENTS_QUALITY),
    conf_keys=("clickstream.generator", "clickstream.sessions", "clickstream.sequence", "clickstream.users_multiplier", "clickstream.max_session_events",
               "clickstream.min_people", "clickstream.holdout_fraction", "clickstream.seed", "clickstream.draw_seed",
               "clickstream.privacy", "recs.fit_splits", "recs.evaluation_split", "synth.periods"),
    body=synthesize_events,
    description="gold.splits' fit periods -> a clickstream generator -> synthetic.events (privacy-gated per person)",
)
