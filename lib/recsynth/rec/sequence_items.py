"""The item arrays that the sequence model and the clickstream's sequence generator both train
with: each vocabulary index's source and its log share among the training targets (the sampled
softmax's correction). Bounded by the vocabulary: a few numbers per item reach the driver."""
from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame

from recsynth.rec import sequence as seq
from recsynth.rec import sequence_features as sf
from recsynth.rec.columns import ITEM_ID, SOURCE
from recsynth.rec.features import ITEM_INDEX


def item_arrays(events: DataFrame, vocabulary: DataFrame, windows: DataFrame,
                sources: dict[str, int]) -> tuple[int, np.ndarray, np.ndarray]:
    """The vocabulary's size, each index's source index (-1: padding, OOV) and log share among
    the training targets of `windows` (bounded by the vocabulary: a few numbers per item reach
    the driver)."""
    owners = events.select(ITEM_ID, SOURCE).distinct().join(vocabulary, ITEM_ID)
    pairs = owners.select(ITEM_INDEX, SOURCE).collect()
    size = max([r[ITEM_INDEX] for r in pairs], default=seq.OOV) + 1
    item_sources = np.full(size, -1, dtype=np.int32)
    for row in pairs:
        item_sources[row[ITEM_INDEX]] = sources[row[SOURCE]]
    counts = np.full(size, 0.5, dtype=np.float64)   # an item never a target still gets drawn, rarely
    for row in sf.target_counts(windows).collect():
        counts[row[ITEM_INDEX]] += row["n"]
    counts[:seq.FIRST_KNOWN] = 1e-12
    return size, item_sources, np.log(counts / counts.sum()).astype(np.float32)
