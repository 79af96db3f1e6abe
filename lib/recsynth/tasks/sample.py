"""Conditional sampling from a published GAN model (`recsynth sample --where purchased=true`):
rows generated on executors under a fixed condition, written to synthetic.samples. Only models
whose output passed the privacy gates can be sampled; a re-run with the same model, condition
and seed replaces its own rows instead of adding more."""
from __future__ import annotations

import logging

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.errors import ConfigError
from recsynth.runtime.runs import Job, Outcome, RunContext
from recsynth.synth import models
from recsynth.synth.constraints import with_helpers
from recsynth.synth.layout import condition_values
from recsynth.synth.privacy import drop_rare_copies
from recsynth.synth.sampling import MAX_TRIES, MIN_BATCH, condition_label, derived_rows

SHOWN_VALUES = 20
log = logging.getLogger(__name__)


def parse_condition(pairs: tuple[str, ...]) -> dict[str, str]:
    """`("purchased=true", "source=rees46")` -> {"purchased": "true", "source": "rees46"}."""
    condition = {}
    for pair in pairs:
        column, sep, value = pair.partition("=")
        if not sep or not column.strip():
            raise ConfigError(f"--where {pair!r}: expected COLUMN=VALUE")
        condition[column.strip()] = value.strip()
    return condition


def sql_string(value: str) -> str:
    """A Spark SQL string literal (category values may hold quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def published_model(ctx: RunContext, wanted: str | None) -> str:
    """`wanted`, if its output passed the privacy gates; by default the model behind synthetic.behavior."""
    if wanted is None:
        return ctx.lake.read(T.SYNTHETIC_BEHAVIOR).select("model_version").first()["model_version"]
    passed = ctx.lake.read(T.SYNTHETIC_QUALITY).filter((F.col("model_version") == wanted) & F.col("gates_passed"))
    if passed.limit(1).count() == 0:
        raise ConfigError(f"--model {wanted}: no published model of that version passed the privacy gates "
                          f"(see: recsynth sql \"SELECT model_version, gates_passed FROM {T.SYNTHETIC_QUALITY}\")")
    return wanted


def check_condition(fitted, condition: dict[str, str]) -> None:
    """Every condition names a categorical column of the model and one of its learned values, or
    a flag of a continuous one (mean_price=null, spend=nonzero)."""
    columns: dict[str, list[str]] = {}
    for name, values in condition_values(fitted):
        columns.setdefault(name, []).extend(values)
    for column, value in condition.items():
        if column not in columns:
            raise ConfigError(f"--where {column}=...: not a categorical column of the model, nor one with a null or "
                              f"zero flag; choose from {sorted(columns)}")
        if value not in columns[column]:
            shown = ", ".join(repr(v) for v in columns[column][:SHOWN_VALUES])
            raise ConfigError(f"--where {column}={value}: the model did not learn that value (rare values are folded "
                              f"into '__other__'); known values: {shown}")


def training_data_version(ctx: RunContext, model_version: str) -> int:
    """The gold.behavior version a model was trained on (recorded in synthetic.quality)."""
    row = (ctx.lake.read(T.SYNTHETIC_QUALITY).filter(F.col("model_version") == model_version)
           .select("training_data_version").first())
    return row["training_data_version"]


def sample_job(rows: int, condition: dict[str, str], model: str | None, seed: int) -> Job:
    """A one-off job writing `rows` rows generated under `condition` to synthetic.samples."""

    def body(ctx: RunContext) -> Outcome:
        version = published_model(ctx, model)
        fitted, weights, params, meta = models.load(models.model_uri(ctx.lake.root, version))
        check_condition(fitted, condition)
        learned = [c.name for c in fitted.continuous] + [c.name for c in fitted.categorical]
        columns = meta.get("columns", learned)  # with the derived columns the model was trained with
        label = condition_label(condition)
        real = with_helpers(ctx.lake.read(T.GOLD_BEHAVIOR, version=training_data_version(ctx, version)),
                            meta.get("learned_as", {}))
        generated = derived_rows(ctx.spark, weights, fitted, params, rows, ctx.conf.synth.sample_partitions, seed,
                                 real.schema, dict(meta.get("derived", [])), condition).cache()
        made = generated.count()  # fewer than asked where the model seldom writes a row meeting every condition
        if made < rows:
            log.warning("%d of %d rows generated: the model seldom writes rows where %s (each partition tries %d "
                        "batches of at least %d rows)", made, rows, label, MAX_TRIES, MIN_BATCH)
        typed = drop_rare_copies(generated, real, columns, ctx.conf.synth.privacy.min_copy_support)
        output = typed.select("synthetic_id", *columns, F.lit(version).alias("model_version"),
                              F.lit(label).alias("condition"), "sample_seed")
        replace = f"model_version = {sql_string(version)} AND condition = {sql_string(label)} AND sample_seed = {seed}"
        ctx.lake.overwrite(T.SYNTHETIC_SAMPLES, output, replace_where=replace if ctx.lake.exists(T.SYNTHETIC_SAMPLES) else None)
        generated.unpersist()
        written = ctx.lake.read(T.SYNTHETIC_SAMPLES).where(replace).count()
        return Outcome(rows_out=written, message=f"{written} rows where {label} from model {version} (seed {seed}; "
                                                 f"{rows - made} not generated, {made - written} equal to rare real "
                                                 f"sessions dropped)")

    return Job(name="sample", inputs=(T.SYNTHETIC_BEHAVIOR, T.SYNTHETIC_QUALITY, T.GOLD_BEHAVIOR),
               outputs=(T.SYNTHETIC_SAMPLES,), conf_keys=("synth.sample_partitions", "synth.privacy.min_copy_support"),
               body=body, skip_when_unchanged=False,
               description="conditional rows from a published GAN model -> synthetic.samples")
