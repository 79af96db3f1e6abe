"""Score a Spark frame on executors with something too large to ship in every task's closure (a
model's weights, the item catalogue): it is broadcast once, each task builds its scorer from it
once, and the scorer runs over each Arrow batch in chunks that bound the memory of one call."""
from __future__ import annotations

from typing import Any, Callable

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType


def score_on_executors(frame: DataFrame, schema: StructType, payload: Any,
                       scorer: Callable[[Any], Callable[[Any], Any]], chunk_rows: int) -> DataFrame:
    """mapInPandas over `frame`: in each task `scorer(payload)` gives a function that takes a
    chunk (pandas, at most `chunk_rows` rows of a batch) and returns its output rows as a pandas
    frame in `schema`; frames without rows are left out. `scorer` is pickled to the executors, so
    it imports what it needs (TensorFlow) itself."""
    broadcast = frame.sparkSession.sparkContext.broadcast(payload)

    def run(batches):
        score = scorer(broadcast.value)
        for batch in batches:
            for start in range(0, len(batch), chunk_rows):
                scored = score(batch.iloc[start:start + chunk_rows])
                if len(scored):
                    yield scored

    return frame.mapInPandas(run, schema)
