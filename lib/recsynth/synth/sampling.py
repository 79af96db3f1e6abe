"""Distributed sampling: synthetic rows generated on executors, one Spark partition at a time,
with the generator weights broadcast. The rows of partition k depend only on (seed, k), so a
seed reproduces the table. Rows carry synthetic ids only, never a real user or session id."""
from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from recsynth.synth.constraints import apply_derived
from recsynth.synth.gan import GanParams, generate as generate_rows, loaded_generator
from recsynth.synth.layout import condition_width, conditions_like_data, rows_meeting
from recsynth.synth.schema import match_types
from recsynth.synth.transformer import FittedTransformer
from recsynth.train.scoring import score_on_executors

MAX_TRIES = 20
MIN_BATCH = 512  # rows a rejection try generates at least: a top-up of 3 rows under a condition 1 row in 1,000 meets


def output_schema(fitted: FittedTransformer) -> StructType:
    return StructType(
        [StructField("synthetic_id", StringType(), False), StructField("sample_seed", LongType(), False)]
        + [StructField(c.name, DoubleType()) for c in fitted.continuous]
        + [StructField(c.name, DoubleType() if c.numeric else StringType()) for c in fitted.categorical]
    )


def synthesize(spark, generator_weights, fitted: FittedTransformer, params: GanParams, rows: int, partitions: int,
               seed: int, condition: dict[str, str] | None = None) -> DataFrame:
    """`rows` synthetic rows in `partitions` partitions; `condition` ({column: value}) keeps only
    rows with those values (generated under that condition, with bounded rejection sampling: each
    partition builds its network once and tries at most MAX_TRIES batches of MIN_BATCH rows or more)."""
    import pandas as pd

    transformer_json = fitted.to_json()
    schema = output_schema(fitted)
    partitions = max(1, min(partitions, rows))  # no partition without a row to generate (a top-up of 3 rows)
    per_partition = [rows // partitions + (1 if k < rows % partitions else 0) for k in range(partitions)]

    def generator(weights):
        fitted_here = FittedTransformer.from_json(transformer_json)

        def generate(ids):  # one row: the partition's number
            partition = int(ids["id"].iloc[0])
            wanted = per_partition[partition]
            rng = np.random.default_rng([seed, partition])
            network, layout = loaded_generator(weights, fitted_here, params, condition_width(fitted_here),
                                               seed=int(rng.integers(2**31)))
            parts, have, tries = [], 0, 0
            while have < wanted and tries < MAX_TRIES:
                conditions = conditions_like_data(fitted_here, max(wanted - have, MIN_BATCH), rng, condition)
                decoded = generate_rows(network, fitted_here, layout, params, conditions, seed=int(rng.integers(2**31)))
                keep = rows_meeting(fitted_here, decoded, condition)
                parts.append(pd.DataFrame({k: v[keep] for k, v in decoded.items()}))
                have += int(keep.sum())
                tries += 1
            frame = pd.concat(parts, ignore_index=True).head(wanted)
            frame.insert(0, "sample_seed", seed)
            frame.insert(0, "synthetic_id", [f"syn-{seed}-{partition}-{i}" for i in range(len(frame))])
            return frame[[f.name for f in schema.fields]]

        return generate

    ids = spark.range(partitions, numPartitions=partitions)
    return (score_on_executors(ids, schema, generator_weights, generator, chunk_rows=1)
            .withColumn("sample_seed", F.col("sample_seed").cast("long")))


def condition_label(condition: dict[str, str]) -> str:
    """A sampling condition as text (`synthetic.samples.condition`, logs): 'purchased=true,spend=nonzero'."""
    return ",".join(f"{column}={value}" for column, value in sorted(condition.items())) or "*"


def derived_rows(spark, generator_weights, fitted: FittedTransformer, params: GanParams, rows: int, partitions: int,
                 seed: int, real: StructType, derived: dict[str, str], condition: dict[str, str] | None = None) -> DataFrame:
    """`synthesize`'s rows typed as the `real` table's columns, with every derived column computed
    (in order): what the synthesize job and `recsynth sample` both publish from."""
    learned = [c.name for c in fitted.continuous] + [c.name for c in fitted.categorical]
    sampled = synthesize(spark, generator_weights, fitted, params, rows, partitions, seed, condition)
    return apply_derived(match_types(sampled, real, learned), derived, real)
