"""Synthesize: gold.behavior -> a GAN trained on Horovod ranks -> synthetic.behavior, published
only if the quality and privacy gates pass (otherwise the previous version stays and the run
fails). Scores go to synthetic.quality, MLflow and an HTML report saved with the model."""
from __future__ import annotations

import datetime as dt
import json
import logging
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.etl import gold as G
from recsynth.errors import GateFailed, LakeError
from recsynth.runtime.cache import cached_frames
from recsynth.runtime.runs import Job, Outcome, RunContext
from recsynth.runtime.stages import Stages
from recsynth.runtime.tracking import Tracker, tracked_run
from recsynth.synth import models
from recsynth.synth.gan import GanParams, params_dict, train_rank
from recsynth.synth.efficacy import ml_efficacy
from recsynth.synth.metrics import score
from recsynth.synth.calibration import Calibration, calibrate, conditions_kept, fill_condition, shortfalls, value_counts
from recsynth.synth.constraints import check, conditions_of, learned_columns, with_helpers
from recsynth.synth.fidelity import assess as assess_fidelity
from recsynth.synth.layout import condition_values, flagged_columns
from recsynth.synth.privacy import assess, drop_rare_copies, split_by_person
from recsynth.synth.report_html import render_report
from recsynth.synth.sampling import condition_label, derived_rows
from recsynth.synth.transformer import encode, fit
from recsynth.train import checkpoints, progress
from recsynth.train.launcher import train_on_ranks
from recsynth.train.shards import check_shardable, current_files

log = logging.getLogger(__name__)

QUALITY_SCHEMA = T.schema(T.SYNTHETIC_QUALITY)


def _train(ctx: RunContext, tracker: Tracker, files: list[str], fitted, params: GanParams, checkpoint_uri: str,
           validation: dict | None):
    """Train on Horovod ranks, reporting each epoch as it ends; rank 0's result and the rows trained on."""

    def on_epoch(record: dict) -> None:
        score = record.get("validation_quality")
        log.log(progress.console_level(record["epoch"], record["epochs"]),
                "GAN epoch %d/%d: discriminator %.4f, generator %.4f%s (%.1f s)", record["epoch"], record["epochs"],
                record["discriminator_loss"], record["generator_loss"],
                "" if score is None else f", validation column shapes {score:.4f}", record["seconds"])
        tracker.metrics({"discriminator_loss": record["discriminator_loss"], "generator_loss": record["generator_loss"],
                         "epoch_seconds": record["seconds"], **({} if score is None else {"validation_quality": score})},
                        step=record["epoch"])

    return train_on_ranks(ctx.spark, train_rank, {"files": files, "transformer_json": fitted.to_json(),
                                                  "params": params_dict(params), "validation": validation},
                          num_proc=ctx.conf.synth.num_proc, attempts=ctx.conf.ops.training_attempts,
                          checkpoint_uri=checkpoint_uri, checkpoint_every=ctx.conf.synth.checkpoint_every,
                          on_epoch=on_epoch, model="GAN")


def _validation_rows(validation, fitted, rows: int, seed: int) -> dict | None:
    """Up to `rows` rows of the validation people, as {column: numpy array} of the learned
    columns (bounded: the sample is what rank 0 scores each epoch on); None without any."""
    columns = [c.name for c in fitted.continuous] + [c.name for c in fitted.categorical]
    numeric = fitted.numeric_columns()
    sample = validation.select(*[F.col(c).cast("double" if c in numeric else "string").alias(c) for c in columns])
    frame = sample.orderBy(F.rand(seed)).limit(rows).toPandas()  # bounded by `rows`
    if frame.empty:
        return None
    return {c: frame[c].to_numpy(dtype=float if c in numeric else object) for c in columns}


def learned_rows(behavior: DataFrame, conf, splits: DataFrame | None = None, periods: tuple | list = T.PERIODS,
                 items: DataFrame | None = None) -> DataFrame:
    """The sessions the GAN learns, as gold.behavior rows: those of `periods` (`Conf.synth_periods`)
    in `splits` (gold.splits), of those the ones `synth.rows_where` keeps (all when null). A
    session with events in another period is clipped: summarised from its events inside, with
    `items`' (silver.items) categories, so that the GAN never sees another period's events and
    still learns the session's part inside. Dropped whole, the sample's `train` lost 15 of its 35
    rees46 carts (and 4 of 46 purchases) to sessions reaching into `validation`."""
    if splits is not None and set(T.PERIODS) - set(periods):
        key = [T.SOURCE, "session_id"]
        elsewhere = splits.where(~F.col("split").isin(*periods)).select(*key).distinct()
        inside = splits.where(F.col("split").isin(*periods)).join(elsewhere, key, "left_semi")
        behavior = (behavior.join(elsewhere, key, "left_anti")
                    .unionByName(G.behavior(inside, items).select(*behavior.columns)))
    if not conf.rows_where:
        return behavior
    check(behavior, {}, {"synth.rows_where": conf.rows_where})
    return behavior.where(conf.rows_where)


def synthesize_behavior(ctx: RunContext) -> Outcome:
    with tracked_run(ctx.conf, "synthesize", ctx.run_id) as tracker, cached_frames() as keep:
        return _synthesize(ctx, tracker, keep)


def _synthesize(ctx: RunContext, tracker: Tracker, keep) -> Outcome:
    conf, lake, spark = ctx.conf.synth, ctx.lake, ctx.spark
    columns, helpers = [*conf.continuous, *conf.categorical], list(conf.learned_as)
    # derived columns that replace a value are computed, not learned; learned-as helpers are learned in their place
    learned = learned_columns(columns, conf.derived) + helpers
    data_version, splits_version, periods = lake.version(T.GOLD_BEHAVIOR), lake.version(T.GOLD_SPLITS), ctx.conf.synth_periods
    everyone, splits = lake.read(T.GOLD_BEHAVIOR, version=data_version), lake.read(T.GOLD_SPLITS, version=splits_version)
    if "price" not in splits.columns:
        raise LakeError(f"{lake.located(T.GOLD_SPLITS)} has no price column: it was written by a recsynth from before "
                        "the GAN learned sessions clipped to its periods; run `recsynth gold --force` once")
    real_rows = learned_rows(everyone, conf, splits, periods, lake.read(T.SILVER_ITEMS))
    check(real_rows.select(*columns), conf.learned_as, {}, key="synth.learned_as")
    behavior = keep(with_helpers(real_rows, conf.learned_as))  # fit, encode, privacy, quality, report
    log.info("learning %d sessions of the periods %s%s (%d in %s): one that reaches into another period clipped to "
             "its events inside", behavior.count(), "+".join(periods), f" where {conf.rows_where}" if conf.rows_where
             else "", everyone.count(), T.GOLD_BEHAVIOR)
    check(behavior.select(*columns, *helpers), conf.derived, conditions_of(conf))
    train, holdout = split_by_person(behavior, conf.holdout_fraction)  # the privacy yardstick: people never trained on
    train, validation = split_by_person(train, conf.validation_fraction, salt="validation")  # early stopping's

    stage = Stages("synthesize")
    with stage("fit", "fitting the data transformer"):
        fitted = fit(train, [c for c in [*conf.continuous, *helpers] if c in learned],
                     [c for c in conf.categorical if c in learned],
                     max_categories=conf.max_categories, max_modes=conf.max_modes, em_iterations=conf.em_iterations,
                     mode_weight_threshold=conf.mode_weight_threshold, sample_rows=conf.fit_sample_rows,
                     stratum=conf.stratify_by, seed=conf.seed, kinds=conf.kinds,
                     discrete_max_values=conf.discrete_max_values, zero_inflated_min_share=conf.zero_inflated_min_share)
    log.info("column kinds: %s", ", ".join(f"{c} {k}" for c, k in fitted.kinds().items()))
    flags = flagged_columns(fitted)
    conditional = {name for name, _ in condition_values(fitted)}
    fill = [entry for entry in conf.calibration.fill_columns() if set(entry) <= conditional]
    if unfillable := [c for entry in conf.calibration.fill_columns() for c in entry if c not in conditional]:
        log.warning("synth.calibration.fill: %s fitted as mixtures here (no nulls, and almost no zeros or no "
                    "others), with no flag to generate under: not filled", unfillable)
    with stage("encode", "encoding the training rows"):
        lake.overwrite(T.SYNTHETIC_ENCODED, encode(train, fitted, seed=conf.seed).repartition(max(2 * conf.num_proc, conf.sample_partitions)))
        files = current_files(lake.read(T.SYNTHETIC_ENCODED))
    check_shardable(files, conf.num_proc, T.SYNTHETIC_ENCODED)

    params = GanParams(**conf.gan.model_dump(), seed=conf.seed)
    tracker.params({**params_dict(params), "num_proc": conf.num_proc, "rows_multiplier": conf.rows_multiplier,
                    "holdout_fraction": conf.holdout_fraction, "max_categories": conf.max_categories,
                    "max_modes": conf.max_modes, "fit_sample_rows": conf.fit_sample_rows, "periods": periods})
    tracker.tags({"training_data": T.GOLD_BEHAVIOR, "training_data_version": data_version,
                  "model_version": ctx.run_id, "conf_hash": ctx.fingerprint})
    training_data = [lake.path(T.GOLD_BEHAVIOR), data_version, conf.rows_where, conf.holdout_fraction,
                     conf.validation_fraction, splits_version, sorted(periods)]
    checkpoint_uri = checkpoints.folder(lake.root, "gan", training_data, fitted.to_json(), params_dict(params),
                                        conf.num_proc)
    validation_rows = _validation_rows(validation, fitted, conf.validation_rows, conf.seed) if params.patience else None
    with stage("train", f"training the GAN on {conf.num_proc} Horovod rank(s), at most {params.epochs} epochs"):
        chief, training_rows = _train(ctx, tracker, files, fitted, params, checkpoint_uri, validation_rows)
    if validation_rows:
        log.info("GAN: the generator of epoch %d of %d kept (best validation column shapes)", chief["best_epoch"],
                 len(chief["history"]))

    version = ctx.run_id
    rows = max(1, int(training_rows * conf.rows_multiplier))
    cal = conf.calibration
    calibrating = bool(cal.by or cal.marginals)  # off: the rows are published as generated
    drawn = max(rows, int(rows * cal.oversample)) if calibrating else rows

    def generate(count: int, seed: int, condition: dict[str, str] | None = None) -> DataFrame:
        return derived_rows(spark, chief["generator"], fitted, params, count, conf.sample_partitions, seed,
                            behavior.schema, conf.derived, condition).select("synthetic_id", *columns, *helpers, "sample_seed")

    with stage("generate", f"generating {drawn} rows on executors"):
        derived = keep(generate(drawn, conf.seed))
        short = {condition: n for entry in (fill if calibrating else []) for condition, n in shortfalls(
            *[value_counts(t.select(fill_condition(entry, flags).alias("_fill")), "_fill") for t in (train, derived)],
            drawn).items()}
        filled = {condition_label(json.loads(condition)): n for condition, n in short.items()}
        under = {conf.seed + 1 + k: condition for k, condition in enumerate(short)}   # sample seed -> its condition
        extra = [generate(short[condition], seed, json.loads(condition))  # as `recsynth sample` draws under a condition
                 for seed, condition in under.items()]
        if extra:
            log.info("generated under a condition, to top up values the GAN writes below their real share: %s",
                     "; ".join(f"{label}: {n} rows" for label, n in filled.items()))
            derived = keep(reduce(DataFrame.unionByName, extra, derived))
            undone = {condition_label(json.loads(under[seed])): counts
                      for seed, counts in conditions_kept(derived, under, flags).items() if counts[1] < counts[0]}
            if undone:
                log.warning("rows generated under a condition that synth.derived changed so that they no longer meet "
                            "it (a fill entry that names a count without the flag its rule reads): %s",
                            "; ".join(f"{label}: {n - met} of {n}" for label, (n, met) in undone.items()))
    with stage("calibrate", f"keeping {rows} rows with the training rows' strata and marginals"):
        # rare copies go first, so that raking fills their strata and values from rows that may be published
        publishable = keep(drop_rare_copies(derived, everyone, columns, conf.privacy.min_copy_support))  # every session
        rare_copies = derived.count() - publishable.count()
        calibrated, calibration = (calibrate(train, publishable, cal.by, cal.marginal_columns(), bins=cal.bins, rows=rows,
                                             iterations=cal.iterations, seed=conf.seed, within=cal.within,
                                             draw_order=cal.draw_order)
                                   if calibrating
                                   else (publishable, Calibration({}, rows=rows, expected=rows, gaps={})))
        synthetic = keep(calibrated)
        published_rows = synthetic.count()
    log.info("calibration: %.0f of %d rows expected after %d raking pass(es); largest share gap left per dimension: %s",
             calibration.expected, rows, calibration.passes, ", ".join(f"{d} {g:.4f}" for d, g in calibration.gaps.items()))
    if calibration.short:
        log.warning("%.0f of %d rows published: the GAN writes some strata or values too rarely for "
                    "synth.calibration.oversample %.1f to fill", calibration.expected, rows, cal.oversample)
    if rare_copies:
        log.info("dropped %d generated row(s) equal to a real session that fewer than %d real sessions share "
                 "(synth.privacy.min_copy_support)", rare_copies, conf.privacy.min_copy_support)
    with stage("privacy", "measuring privacy"):
        report = assess(*[t.select(*columns, *helpers) for t in (train, holdout, derived, synthetic)], fitted,
                        min_copy_support=conf.privacy.min_copy_support,
                        query_rows=conf.privacy.query_rows, seed=conf.seed)
    with stage("quality", "measuring quality (column shapes, pair trends, coverage, constraints, rare shares, ML efficacy)"):
        scores = score(train.select(*columns), synthetic.select(*columns), conf.continuous, conf.categorical)
        quality = conf.quality
        fidelity = assess_fidelity(train.select(*columns), synthetic.select(*columns), conf.continuous, conf.categorical,
                                   conf.constraints, {name: r.where for name, r in quality.rare_shares.items()})
        efficacy = ml_efficacy(train, holdout, synthetic, quality.efficacy_target, conf.continuous, conf.categorical,
                               exclude=quality.efficacy_exclude, positive=quality.efficacy_positive, seed=conf.seed)
    failures = report.failures(conf.privacy.max_excess_copy_share, conf.privacy.min_dcr_ratio, conf.privacy.max_membership_auc)
    if scores.overall < quality.min_overall:
        failures.append(f"quality {scores.overall:.3f} (mean of column shapes and pair trends) < {quality.min_overall}")
    failures += fidelity.failures(quality, conf.constraints)
    gates = "; ".join(failures) or "passed"
    model_uri = models.model_uri(lake.root, version)
    scores_flat = {"column_shapes": scores.column_shapes, "pair_trends": scores.pair_trends, "quality_overall": scores.overall,
                   "pair_trends_sdmetrics": scores.pair_trends_sdmetrics,
                   "efficacy_real_auc": efficacy.real_auc, "efficacy_synthetic_auc": efficacy.synthetic_auc,
                   "efficacy_auc_ratio": efficacy.auc_ratio, **fidelity.summary(), **report.__dict__}
    meta = {"run_id": ctx.run_id, "training_data": T.GOLD_BEHAVIOR, "training_data_version": data_version,
            "training_rows": training_rows, "history": chief["history"], "best_epoch": chief["best_epoch"],
            "scores": scores_flat,
            "efficacy_notes": efficacy.notes, "gates_failed": failures, "stage_seconds": stage.seconds,
            "columns": columns, "learned_as": conf.learned_as,
            "derived": list(conf.derived.items()),  # pairs: a rule may read the ones before it
            "kinds": fitted.kinds(), "fidelity": fidelity.__dict__,
            "calibration": {"drawn": drawn, "filled": filled, "wanted": rows, "expected": calibration.expected,
                            "passes": calibration.passes, "gaps": calibration.gaps},
            "saved_at": dt.datetime.utcnow().isoformat()}
    models.save(model_uri, fitted, chief["generator"], params, meta)
    with stage("report", "writing the HTML report"):
        html = render_report(train.select(*columns), synthetic.select(*columns), scores, efficacy, report.__dict__, {
            "model version": version, "training data": f"{T.GOLD_BEHAVIOR} v{data_version}",
            "training rows": training_rows, "synthetic rows": published_rows, "gates": gates}, fidelity=fidelity)
        report_uri = models.save_report(model_uri, html)
    # the whole privacy report to the log file; the job's outcome line gives the scores on the console
    log.debug("model %s: quality %.3f (shapes %.3f, pairs %.3f), ML efficacy AUC ratio %.2f, privacy %s; report %s",
             version, scores.overall, scores.column_shapes, scores.pair_trends, efficacy.auc_ratio, report, report_uri)
    tracker.metrics({"training_rows": training_rows, "synthetic_rows": published_rows,
                     "rare_copies_dropped": rare_copies, **scores_flat,
                     **{f"seconds_{key}": sec for key, sec in stage.seconds.items()}})
    tracker.text(html, "quality_report.html")
    tracker.tags({"gates": gates, "report_uri": report_uri})
    if failures:
        raise GateFailed(f"gate failed, synthetic.behavior not published (model {version}; report {report_uri}): "
                         + "; ".join(failures))

    lake.overwrite(T.SYNTHETIC_BEHAVIOR, synthetic.select(
        "synthetic_id", *columns, F.lit(version).alias("model_version"),
        F.lit(data_version).cast("bigint").alias("training_data_version"), "sample_seed"))
    quality_row = {"run_id": ctx.run_id, "model_version": version, "training_data_version": data_version,
                   "training_rows": training_rows, "synthetic_rows": published_rows, **scores_flat, "gates_passed": True,
                   "measured_at": ctx.started_at, "report_uri": report_uri, "rare_copies_dropped": rare_copies,
                   "rare_share_ratios": fidelity.rare_share_ratios()}
    lake.append(T.SYNTHETIC_QUALITY, spark.createDataFrame([quality_row], QUALITY_SCHEMA), add_columns=True)
    checkpoints.clear(checkpoint_uri)  # the versioned model is the durable result now
    return Outcome(rows_in=training_rows, rows_out=published_rows,
                   message=f"model {version}: quality {scores.overall:.3f}, ML efficacy {efficacy.auc_ratio:.2f}, "
                           f"DCR ratio {report.dcr_ratio:.2f}, membership AUC {report.membership_auc:.2f}")  # the report: synthetic.quality


SYNTHESIZE = Job(
    name="synthesize",
    inputs=(T.GOLD_BEHAVIOR, T.GOLD_SPLITS, T.SILVER_ITEMS),   # silver.items: the categories of clipped sessions
    outputs=(T.SYNTHETIC_ENCODED, T.SYNTHETIC_BEHAVIOR, T.SYNTHETIC_QUALITY),
    conf_keys=("synth", "recs.fit_splits"),  # recs.fit_splits: the periods learned when synth.periods is null
    body=synthesize_behavior,
    description="gold.behavior -> GAN on Horovod ranks -> synthetic.behavior (privacy-gated)",
)
