"""Column-shape quality of synthetic data against real data (the SDMetrics definition):
1 - KS statistic for continuous columns, 1 - total variation distance for categorical ones,
averaged over columns. This numpy form scores in-memory samples (tests, benchmarks, a
reference for the Spark form); jobs score whole tables with `recsynth.synth.metrics`."""
from __future__ import annotations

import numpy as np


def ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    real = np.sort(real[~np.isnan(real)])
    synthetic = np.sort(synthetic[~np.isnan(synthetic)])
    if len(real) == 0 or len(synthetic) == 0:
        return float(len(real) == len(synthetic))
    points = np.concatenate([real, synthetic])
    gap = np.abs(np.searchsorted(real, points, side="right") / len(real) - np.searchsorted(synthetic, points, side="right") / len(synthetic))
    return float(1.0 - gap.max())


def tv_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - TVD of the value shares, nulls left out (as SDMetrics' TVComplement)."""
    real_list, synthetic_list = ([v for v in a.tolist() if v is not None and v == v] for a in (real, synthetic))
    values = set(real_list) | set(synthetic_list)
    distance = sum(abs(real_list.count(v) / len(real_list) - synthetic_list.count(v) / len(synthetic_list)) for v in values)
    return float(1.0 - 0.5 * distance)


def column_shapes(real: dict, synthetic: dict, continuous: list[str], categorical: list[str]) -> float:
    scores = [ks_complement(np.asarray(real[c], float), np.asarray(synthetic[c], float)) for c in continuous]
    scores += [tv_complement(np.asarray(real[c], object), np.asarray(synthetic[c], object)) for c in categorical]
    return float(np.mean(scores))
