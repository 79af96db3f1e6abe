"""The GAN's data transformer (CTGAN-style), fitted with Spark on the whole table or a
stratified sample, never by collecting rows to the driver.

- Continuous columns get mode-specific normalisation: a 1-D Gaussian mixture per column,
  fitted by EM where each iteration is one Spark pass over every column at once; a value is
  encoded as (mode, alpha) with alpha = (x - mu_mode) / (4 sigma_mode), plus a null flag (a null
  row carries a random draw from the mixture instead). EM starts from quantiles reaching far
  into the upper tail, so a rare value next to a huge spike (spend: 0 in 99% of sessions) gets
  its own mode; a spike becomes a point-mass mode that decodes to its exact value. Decoding
  keeps values in the real column's range and rounds columns that hold whole numbers only.
- Categorical columns keep their `max_categories` most frequent values; the rest fold into
  OTHER, so a column with 10^5 distinct values costs at most `max_categories` + 2 one-hot slots.
- A continuous column is encoded for its kind (declared, or inferred from the data by `fit`):
  `mixture` as above; `zero_inflated` (spend: 0 in 99% of sessions) a mixture over the non-zero
  values plus a zero flag, which is conditional like the null flag, so training-by-sampling also
  learns the rare non-zero side; `discrete` (a count with few values: purchases per session) one
  category per value, decoded back to the number, so a value held by 0.1% of rows is kept
  rather than merged into a wide mode. Point-mass modes are never dropped for a small weight.

The fitted state is a small JSON document (`to_json` / `from_json`), saved with the model.
Encoding runs in Spark (`encode`); decoding runs in numpy (`decode`) on sampling executors.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from recsynth.errors import RecsynthError
from recsynth.frames import require_columns

OTHER = "__other__"
NULL = "__null__"
ALPHA_LIMIT = 0.99
MAX_STRATA = 10_000
TAIL_LEVELS = [1 - 0.5 ** k for k in range(1, 12)]  # 0.5 ... 0.9995: where EM looks for rare values
MIXTURE, ZERO_INFLATED, DISCRETE = "mixture", "zero_inflated", "discrete"
KINDS = (MIXTURE, ZERO_INFLATED, DISCRETE)


class TransformerError(RecsynthError):
    """The table cannot be encoded as asked (missing column, wrong type, empty table)."""


@dataclass
class ContinuousColumn:
    name: str
    means: list[float]
    stds: list[float]
    weights: list[float]
    has_nulls: bool
    minimum: float | None = None   # the real range: decoded values are clipped to it
    maximum: float | None = None
    integral: bool = False         # every real value is a whole number: decoded values are rounded
    point_mass: list[bool] = field(default_factory=list)  # per mode: one exact value (0 spend), decoded as its mean
    null_share: float = 0.0        # share of null rows in the fitted data (conditions for sampling follow it)
    zero_inflated: bool = False    # a zero flag carries the zeros; the mixture is over the other values
    zero_share: float = 0.0        # share of rows equal to 0 (conditions for sampling follow it)

    @property
    def width(self) -> int:
        return 1 + len(self.means) + int(self.has_nulls) + int(self.zero_inflated)


@dataclass
class CategoricalColumn:
    name: str
    values: list[str]  # index = code; OTHER and NULL included where they occur
    counts: list[int]  # rows per value in the fitted data (conditions for sampling follow them)
    numeric: bool = False  # a discrete numeric column: values are numbers, decoded as floats

    @property
    def width(self) -> int:
        return len(self.values)


@dataclass
class FittedTransformer:
    continuous: list[ContinuousColumn] = field(default_factory=list)
    categorical: list[CategoricalColumn] = field(default_factory=list)

    @property
    def width(self) -> int:
        """Length of the one-hot/alpha vector the GAN sees."""
        return sum(c.width for c in self.continuous) + sum(c.width for c in self.categorical)

    def kinds(self) -> dict[str, str]:
        """How each continuous column is encoded (see the module doc)."""
        return ({c.name: ZERO_INFLATED if c.zero_inflated else MIXTURE for c in self.continuous}
                | {c.name: DISCRETE for c in self.categorical if c.numeric})

    def numeric_columns(self) -> set[str]:
        """Columns decoded as numbers: the mixtures and the discrete ones."""
        return {c.name for c in self.continuous} | {c.name for c in self.categorical if c.numeric}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "FittedTransformer":
        data = json.loads(text)
        return FittedTransformer([ContinuousColumn(**c) for c in data["continuous"]],
                                 [CategoricalColumn(**c) for c in data["categorical"]])


def stratified_sample(table: DataFrame, stratum: str, rows: int, seed: int) -> DataFrame:
    """About `rows` rows with every stratum represented in proportion (the whole table if smaller)."""
    key = F.coalesce(F.col(stratum).cast("string"), F.lit(NULL))
    strata = table.groupBy(key.alias("k")).count().limit(MAX_STRATA + 1).collect()
    if len(strata) > MAX_STRATA:
        raise TransformerError(f"stratum column {stratum} has more than {MAX_STRATA} values; pick a low-cardinality column")
    counts = {r["k"]: r["count"] for r in strata}
    total = sum(counts.values())
    if total <= rows:
        return table
    return table.sampleBy(key, {value: min(1.0, rows / total) for value in counts}, seed)


def check_columns(table: DataFrame, continuous: list[str], categorical: list[str], error=TransformerError) -> None:
    """Every named column exists and the continuous ones are numeric; otherwise `error` says which."""
    require_columns(table, "the table", continuous + categorical, error)
    types = {f.name: f.dataType for f in table.schema.fields}
    not_numeric = [c for c in continuous if not isinstance(types[c], NumericType)]
    if not_numeric:
        raise error(f"continuous column(s) {not_numeric} are not numeric: {[types[c].simpleString() for c in not_numeric]}")


def _fit_categorical(table: DataFrame, name: str, max_categories: int, numeric: bool = False) -> CategoricalColumn:
    text = F.col(name).cast("string")
    counts = table.groupBy(text.alias("v")).count()
    top = counts.filter(F.col("v").isNotNull()).orderBy(F.desc("count"), "v").limit(max_categories).collect()
    totals = counts.agg(F.sum("count").alias("rows"), F.sum(F.when(F.col("v").isNull(), F.col("count"))).alias("nulls")).head()
    nulls = totals["nulls"] or 0
    other = totals["rows"] - nulls - sum(r["count"] for r in top)
    values = [r["v"] for r in top] + ([OTHER] if other else []) + ([NULL] if nulls else [])
    if numeric and other:
        raise TransformerError(f"column {name} is declared discrete but has more than max_categories={max_categories} values")
    return CategoricalColumn(name, values, [r["count"] for r in top] + ([other] if other else []) + ([nulls] if nulls else []),
                             numeric)


def _kinds(sample: DataFrame, continuous: list[str], declared: dict[str, str], discrete_max_values: int | None,
           zero_inflated_min_share: float | None) -> dict[str, str]:
    """Every continuous column's kind: as declared, else inferred from the sample (one pass):
    a whole-number column with at most `discrete_max_values` values is discrete; else one whose
    non-null values are 0 in at least `zero_inflated_min_share` of rows (and not all) is
    zero-inflated; else a mixture. Without thresholds, undeclared columns are mixtures."""
    unknown = sorted(set(declared) - set(continuous))
    if unknown:
        raise TransformerError(f"kinds given for {unknown}, which are not continuous columns")
    bad = {c: k for c, k in declared.items() if k not in KINDS}
    if bad:
        raise TransformerError(f"unknown column kind(s) {bad}; kinds are {list(KINDS)}")
    open_columns = [c for c in continuous if c not in declared]
    if not open_columns or discrete_max_values is None or zero_inflated_min_share is None:
        return {c: declared.get(c, MIXTURE) for c in continuous}
    stats = sample.agg(*[expr for c in open_columns for expr in (
        F.countDistinct(c).alias(f"{c}__distinct"), F.count(c).alias(f"{c}__n"),
        F.count(F.when(F.col(c) == 0, 1)).alias(f"{c}__zeros"),
        F.max(F.abs(F.col(c) - F.round(c))).alias(f"{c}__fraction"))]).head()
    kinds = dict(declared)
    for c in open_columns:
        n, zeros = stats[f"{c}__n"], stats[f"{c}__zeros"]
        if stats[f"{c}__fraction"] == 0 and 0 < stats[f"{c}__distinct"] <= discrete_max_values:
            kinds[c] = DISCRETE
        elif n and zeros < n and zeros >= zero_inflated_min_share * n:
            kinds[c] = ZERO_INFLATED
        else:
            kinds[c] = MIXTURE
    return {c: kinds[c] for c in continuous}


def _starts(even: list[float], tail: list[float], max_modes: int) -> list[float]:
    """EM's starting means: the distinct evenly spread quantiles, then, while there is room, the
    distinct quantiles ever further into the upper tail, so that a column that is mostly one value
    (spend: 0 in 99% of sessions) still starts a mode in its rare values instead of one wide mode."""
    starts = sorted(set(even))
    for value in tail:
        if len(starts) < max_modes and value not in starts:
            starts.append(value)
    return sorted(starts)


def _log_densities(x, means, stds, weights):
    """Spark expressions log(w_j N(x | mu_j, sd_j)) for each mode j (constant term dropped)."""
    return [F.lit(math.log(w)) - F.lit(math.log(s)) - F.lit(0.5) * F.pow((x - F.lit(m)) / F.lit(s), 2)
            for m, s, w in zip(means, stds, weights)]


def _em_sums(sample: DataFrame, state: dict) -> dict[str, np.ndarray]:
    """One E-step over the whole sample: per column, the (3, modes) sums of responsibilities r,
    r*x and r*x^2. Each partition reduces its rows with numpy; only those small arrays (one per
    partition and column) reach the driver."""
    import pandas as pd

    names = list(state)
    modes = {n: (np.asarray(state[n]["means"]), np.asarray(state[n]["stds"]), np.asarray(state[n]["weights"])) for n in names}

    def partial_sums(batches):
        sums = {n: np.zeros((3, len(modes[n][0]))) for n in names}
        for batch in batches:
            for n in names:
                x = batch[n].to_numpy(dtype=float)
                x = x[~np.isnan(x)][:, None]
                means, stds, weights = modes[n]
                log_density = np.log(weights) - np.log(stds) - 0.5 * ((x - means) / stds) ** 2
                r = np.exp(log_density - log_density.max(axis=1, keepdims=True))
                r /= r.sum(axis=1, keepdims=True)
                sums[n] += np.stack([r.sum(axis=0), (r * x).sum(axis=0), (r * x * x).sum(axis=0)])
        yield pd.DataFrame({"name": names, "sums": [sums[n].ravel().tolist() for n in names]})

    columns = sample.select(*[F.col(n).cast("double").alias(n) for n in names])
    totals = {n: np.zeros((3, len(modes[n][0]))) for n in names}
    for row in columns.mapInPandas(partial_sums, "name string, sums array<double>").collect():  # partitions x columns
        totals[row["name"]] += np.asarray(row["sums"]).reshape(3, -1)
    return totals


def _fit_mixtures(sample: DataFrame, names: list[str], max_modes: int, iterations: int, weight_threshold: float) -> list[ContinuousColumn]:
    """EM for one 1-D mixture per column; every iteration is one pass over the sample for all columns.

    A column with no value at all gets one placeholder mode and is always null."""
    order = list(names)
    stats = sample.agg(*[expr for n in names for expr in (
        F.count(n).alias(f"{n}__n"), F.stddev_pop(n).alias(f"{n}__sd"), F.count(F.lit(1)).alias(f"{n}__rows"),
        F.min(n).alias(f"{n}__min"), F.max(n).alias(f"{n}__max"),
        F.max(F.abs(F.col(n) - F.round(n))).alias(f"{n}__fraction"),
        F.percentile_approx(n, [(j + 0.5) / max_modes for j in range(max_modes)], 1000).alias(f"{n}__q"),
        F.percentile_approx(n, TAIL_LEVELS, 1000).alias(f"{n}__tail"))]).head()
    state, all_null = {}, [n for n in names if not stats[f"{n}__n"]]
    names = [n for n in names if n not in all_null]  # e.g. prices of a source without prices
    for n in names:
        spread = stats[f"{n}__sd"] or 0.0
        floor = max(1e-6, 1e-3 * spread)
        starts = _starts(stats[f"{n}__q"], stats[f"{n}__tail"], max_modes)
        state[n] = {"means": starts, "stds": [max(spread / len(starts), floor)] * len(starts),
                    "weights": [1.0 / len(starts)] * len(starts), "floor": floor, "starts": starts,
                    "nulls": stats[f"{n}__rows"] > stats[f"{n}__n"]}
    for _ in range(iterations if names else 0):
        totals = _em_sums(sample, {n: state[n] for n in names})
        for n in names:
            s = state[n]
            r, rx, rxx = totals[n]
            keep = r > 1e-9
            means = rx[keep] / r[keep]
            stds = np.maximum(np.sqrt(np.maximum(rxx[keep] / r[keep] - means ** 2, 0.0)), s["floor"])
            s.update(means=means.tolist(), stds=stds.tolist(), weights=(r[keep] / r.sum()).tolist())
    fitted = {n: ContinuousColumn(n, [0.0], [1.0], [1.0], True, null_share=1.0) for n in all_null}
    for n in names:
        s = state[n]
        spikes = [bool(sd <= s["floor"]) for sd in s["stds"]]  # one exact value: kept however rare (a rare value is not noise)
        keep = [j for j, w in enumerate(s["weights"]) if w >= weight_threshold or spikes[j]] or [int(np.argmax(s["weights"]))]
        kept = sum(s["weights"][j] for j in keep)
        point_masses = [spikes[j] for j in keep]
        for j, point_mass in zip(keep, point_masses):  # a spike sits on a real value (a start is one): 0, not 0.0018
            nearest = min(s["starts"], key=lambda start: abs(start - s["means"][j]))
            if point_mass and abs(nearest - s["means"][j]) <= s["floor"]:
                s["means"][j] = nearest
        fitted[n] = ContinuousColumn(n, [s["means"][j] for j in keep], [s["stds"][j] for j in keep],
                                     [s["weights"][j] / kept for j in keep], bool(s["nulls"]), float(stats[f"{n}__min"]),
                                     float(stats[f"{n}__max"]), stats[f"{n}__fraction"] == 0,
                                     point_masses, 1.0 - stats[f"{n}__n"] / stats[f"{n}__rows"])
    return [fitted[n] for n in order]


def _fit_zero_inflated(sample: DataFrame, names: list[str], mixtures: list[ContinuousColumn]) -> list[ContinuousColumn]:
    """Zero-inflated columns: the mixtures were fitted on the non-zero values (zeros masked as
    nulls); put back the real null share and add the zero share."""
    if not names:
        return mixtures
    stats = sample.agg(F.count(F.lit(1)).alias("rows"), *[expr for c in names for expr in (
        F.count(c).alias(f"{c}__n"), F.count(F.when(F.col(c) == 0, 1)).alias(f"{c}__zeros"))]).head()
    rows, fixed = stats["rows"], []
    for column in mixtures:
        if column.name in names:
            nulls = rows - stats[f"{column.name}__n"]
            column.has_nulls, column.null_share = bool(nulls), nulls / rows
            column.zero_inflated, column.zero_share = True, stats[f"{column.name}__zeros"] / rows
        fixed.append(column)
    return fixed


def fit(table: DataFrame, continuous: list[str], categorical: list[str], *, max_categories: int, max_modes: int,
        em_iterations: int, mode_weight_threshold: float, sample_rows: int | None = None, stratum: str | None = None,
        seed: int = 0, kinds: dict[str, str] | None = None, discrete_max_values: int | None = None,
        zero_inflated_min_share: float | None = None) -> FittedTransformer:
    """Fit the transformer on `table` (or a stratified sample of about `sample_rows` rows).

    `kinds` declares continuous columns' kinds; the others are inferred when both thresholds are
    given (see `_kinds`), else fitted as mixtures."""
    check_columns(table, continuous, categorical)
    sample = stratified_sample(table, stratum or categorical[0], sample_rows, seed) if sample_rows and categorical else table
    sample = sample.select(*continuous, *categorical).cache()
    try:
        if sample.limit(1).count() == 0:
            raise TransformerError("the table is empty: nothing to fit")
        kind = _kinds(sample, continuous, kinds or {}, discrete_max_values, zero_inflated_min_share)
        mixtures = [c for c in continuous if kind[c] != DISCRETE]
        zeros = [c for c in mixtures if kind[c] == ZERO_INFLATED]
        masked = sample.select(*[F.when(F.col(c) != 0, F.col(c)).alias(c) if c in zeros else F.col(c) for c in mixtures])
        fitted_mixtures = _fit_mixtures(masked, mixtures, max_modes, em_iterations, mode_weight_threshold) if mixtures else []
        return FittedTransformer(
            _fit_zero_inflated(sample, zeros, fitted_mixtures),
            [_fit_categorical(sample, c, max_categories) for c in categorical]
            + [_fit_categorical(sample, c, max_categories, numeric=True) for c in continuous if kind[c] == DISCRETE],
        )
    finally:
        sample.unpersist()


def _random_draw(c: ContinuousColumn, seed: int):
    """(mode, alpha) of a random draw from the column's mixture: what a null row carries, so that
    the GAN learns the column's distribution from every row, not a placeholder that 97% of rows
    share (the null flag says the value is absent; decoding ignores mode and alpha then)."""
    u = F.rand(seed)
    mode = sum((F.when(u >= F.lit(edge), F.lit(1)).otherwise(F.lit(0)) for edge in np.cumsum(c.weights)[:-1]), F.lit(0))
    alpha = F.least(F.greatest(F.randn(seed + 1) / F.lit(4.0), F.lit(-ALPHA_LIMIT)), F.lit(ALPHA_LIMIT))
    return mode, alpha


def encode(table: DataFrame, fitted: FittedTransformer, keep: tuple[str, ...] = (), seed: int = 0) -> DataFrame:
    """Rows -> compact codes: per continuous column `<c>__mode` (int), `<c>__alpha` (double),
    `<c>__null` (0/1) and, zero-inflated, `<c>__zero` (0/1); per categorical (or discrete) column
    `<c>__code` (int). One-hot expansion happens on the ranks. A null (or zero-flagged) value's
    mode and alpha are a random draw from its column's mixture (seeded)."""
    columns = [F.col(k) for k in keep]
    for k, c in enumerate(fitted.continuous):
        null_mode, null_alpha = _random_draw(c, seed + 2 * k)
        x = F.col(c.name).cast("double")
        logs = _log_densities(x, c.means, c.stds, c.weights)
        best = F.greatest(*logs) if len(logs) > 1 else logs[0]
        mode = F.lit(0)  # the first mode with the highest density
        for j in reversed(range(1, len(logs))):
            mode = F.when(logs[j] == best, F.lit(j)).otherwise(mode)
        if len(logs) > 1:
            mode = F.when(logs[0] == best, F.lit(0)).otherwise(mode)
        mean = F.element_at(F.array(*[F.lit(m) for m in c.means]), mode + 1)
        std = F.element_at(F.array(*[F.lit(s) for s in c.stds]), mode + 1)
        alpha = F.least(F.greatest((x - mean) / (F.lit(4.0) * std), F.lit(-ALPHA_LIMIT)), F.lit(ALPHA_LIMIT))
        flagged = x.isNull() | (x == 0) if c.zero_inflated else x.isNull()
        columns += [F.when(flagged, null_mode).otherwise(mode).cast("int").alias(f"{c.name}__mode"),
                    F.when(flagged, null_alpha).otherwise(alpha).alias(f"{c.name}__alpha"),
                    x.isNull().cast("int").alias(f"{c.name}__null")]
        if c.zero_inflated:
            columns.append(F.coalesce(x == 0, F.lit(False)).cast("int").alias(f"{c.name}__zero"))
    for c in fitted.categorical:
        text = F.col(c.name).cast("string")
        codes = F.create_map(*[F.lit(x) for i, v in enumerate(c.values) if v not in (OTHER, NULL) for x in (v, i)])
        other = c.values.index(OTHER) if OTHER in c.values else -1
        null = c.values.index(NULL) if NULL in c.values else other
        code = F.when(text.isNull(), F.lit(null)).otherwise(F.coalesce(codes[text], F.lit(other)))
        columns.append(code.cast("int").alias(f"{c.name}__code"))
    return table.select(*columns)


def decode(codes: dict[str, np.ndarray], fitted: FittedTransformer) -> dict[str, np.ndarray]:
    """Compact codes (as `encode` writes them, or as a generator emits them) -> column values.

    Continuous values stay within the real column's range (rounded where it holds whole numbers
    only), so a generator cannot emit negative counts or prices; categorical values come back as
    strings (discrete columns as floats); OTHER stays OTHER and NULL becomes None (NaN)."""
    out = {}
    for c in fitted.continuous:
        mode = codes[f"{c.name}__mode"].astype(int)
        value = codes[f"{c.name}__alpha"] * 4.0 * np.asarray(c.stds)[mode] + np.asarray(c.means)[mode]
        if c.point_mass:
            value = np.where(np.asarray(c.point_mass)[mode], np.asarray(c.means)[mode], value)
        if c.minimum is not None:
            value = np.clip(value, c.minimum, c.maximum)
        if c.integral:
            value = np.round(value)
        if c.zero_inflated:
            value = np.where(codes[f"{c.name}__zero"].astype(bool), 0.0, value)
        nulls = codes.get(f"{c.name}__null")
        if c.null_share >= 1.0:  # no real row has a value (prices of a source without prices): none is made up
            nulls = np.ones(len(value))
        out[c.name] = np.where(nulls.astype(bool), np.nan, value) if nulls is not None and c.has_nulls else value
    for c in fitted.categorical:
        out[c.name] = decoded_values(c)[codes[f"{c.name}__code"].astype(int)]
    return out


def decoded_values(column: CategoricalColumn) -> np.ndarray:
    """A categorical column's values (by code) as `decode` returns them."""
    return np.asarray([decoded_value(v, column.numeric) for v in column.values], dtype=float if column.numeric else object)


def decoded_value(value: str, numeric: bool):
    """One categorical value as decoded: a float for a discrete column, None (NaN) for NULL, else the text."""
    if value == NULL:
        return np.nan if numeric else None
    return float(value) if numeric else value
