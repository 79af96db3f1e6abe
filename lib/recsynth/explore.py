"""Spark aggregates and plots behind the notebooks in notebooks/ (exploring the lake).

Every function here aggregates in Spark and hands back something small (one row per funnel
stage, per histogram bin, per source and entity), so a notebook can turn it into pandas and plot
it without ever pulling a table to the driver. Tables' versions and row counts come from
recsynth.reporting.status and quarantine counts from recsynth.reporting.summary, as `recsynth status` shows them. Plots are drawn on matplotlib Figures without
pyplot (a notebook shows a returned Figure as its cell's output).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import CANONICAL_EVENT_TYPES
from recsynth.errors import RecsynthError
from recsynth.frames import require_columns
from recsynth.synth.report_html import bin_index

SESSION_ID = "session_id"
USER_ID = "user_id"
EVENT_TYPE = "event_type"
MODEL_VERSION = "model_version"
MEASURED_AT = "measured_at"
REAL_COLOUR, SYNTHETIC_COLOUR = "#1f77b4", "#ff7f0e"


class ExploreError(RecsynthError):
    """An exploration input is unusable (the message names the frame, column or value)."""


def funnel(events: DataFrame, by: str = T.SOURCE, unit: str = SESSION_ID,
           stages: tuple[str, ...] = CANONICAL_EVENT_TYPES) -> DataFrame:
    """The view -> cart -> purchase funnel per `by` group: how many `unit`s (sessions by default,
    or users) had at least one event of each stage, and their share of the first stage's units.

    Columns: `by`, stage, step (1-based), units, share_of_first (null when the first stage is empty).
    Every (group, stage) pair is present, with 0 units when nobody reached it."""
    require_columns(events, "events", [by, unit, EVENT_TYPE], ExploreError)
    if not stages:
        raise ExploreError("funnel needs at least one stage (event type)")
    reached = events.groupBy(by).agg(*[
        F.countDistinct(F.when(F.col(EVENT_TYPE) == stage, F.col(unit))).alias(f"_{step}")
        for step, stage in enumerate(stages, start=1)])
    steps = F.explode(F.array(*[
        F.struct(F.lit(stage).alias("stage"), F.lit(step).alias("step"), F.col(f"_{step}").alias("units"))
        for step, stage in enumerate(stages, start=1)])).alias("s")
    return (reached.select(by, F.col("_1").alias("_first"), steps)
            .select(by, "s.stage", "s.step", "s.units",
                    F.when(F.col("_first") > 0, F.col("s.units") / F.col("_first")).alias("share_of_first"))
            .orderBy(by, "step"))


def latest_data_quality(data_quality: DataFrame) -> DataFrame:
    """ops.data_quality reduced to the newest run of each (job, source, entity), one row per
    source and entity with its input rows and how they ended: accepted, return, duplicate, quarantined."""
    keys = ["job", T.SOURCE, "entity"]
    require_columns(data_quality, "ops.data_quality", [*keys, "run_id", "metric", "rows", MEASURED_AT], ExploreError)
    newest = data_quality.groupBy(*keys).agg(F.max(F.struct(MEASURED_AT, "run_id")).alias("_newest"))
    latest = data_quality.join(newest, keys).where(F.col("run_id") == F.col("_newest.run_id"))
    outcomes = ["input", "accepted", "return", "duplicate", "quarantined"]
    return (latest.groupBy(*keys, "run_id").pivot("metric", outcomes)
            .agg(F.sum("rows")).na.fill(0, outcomes)
            .orderBy(*keys))


@dataclass(frozen=True)
class Histogram:
    """Counts of a numeric column in equal-width bins; values outside [edges[0], edges[-1]] are
    counted in the outer bins, nulls (and NaN) apart."""
    column: str
    edges: list[float]
    counts: list[int]
    nulls: int


def histogram(frame: DataFrame, column: str, bins: int = 20, lo: float | None = None,
              hi: float | None = None) -> Histogram:
    """A histogram computed in Spark: one pass for the range (when `lo`/`hi` are not given),
    one for the counts; only `bins` numbers reach the driver."""
    require_columns(frame, "frame", [column], ExploreError)
    if bins < 1:
        raise ExploreError(f"bins must be >= 1, got {bins}")
    value = F.col(column).cast("double")
    value = F.when(~F.isnan(value), value)
    if lo is None or hi is None:
        low, high = frame.agg(F.min(value), F.max(value)).head()
        lo = (low if low is not None else 0.0) if lo is None else lo
        hi = (high if high is not None else 0.0) if hi is None else hi
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    rows = frame.groupBy(bin_index(value, lo, hi, bins).alias("bin")).count().collect()
    counts = [0] * bins
    nulls = 0
    for row in rows:
        if row["bin"] is None:
            nulls = row["count"]
        else:
            counts[row["bin"]] = row["count"]
    return Histogram(column, np.linspace(lo, hi, bins + 1).tolist(), counts, nulls)


def latest_model_version(metrics: DataFrame) -> str:
    """The model_version of the newest recommend run in recs.metrics."""
    require_columns(metrics, "recs.metrics", [MODEL_VERSION, MEASURED_AT], ExploreError)
    newest = metrics.orderBy(F.desc(MEASURED_AT), F.desc(MODEL_VERSION)).select(MODEL_VERSION).head()
    if newest is None:
        raise ExploreError("recs.metrics is empty: run `recsynth recommend` first")
    return newest[MODEL_VERSION]


def recommendation_coverage(top_n: DataFrame, catalogue_items: int, head: int = 10) -> dict:
    """How much of the catalogue one model version's lists reach (pass recs.top_n filtered to it):
    users, list entries, distinct items, their share of `catalogue_items`, and the share of all
    entries taken by the `head` most recommended items (how concentrated the lists are)."""
    require_columns(top_n, "recs.top_n", [USER_ID, "item_id"], ExploreError)
    if catalogue_items < 1:
        raise ExploreError(f"catalogue_items must be >= 1, got {catalogue_items}")
    per_item = top_n.groupBy("item_id").agg(F.count(F.lit(1)).alias("n"))
    totals = top_n.agg(F.countDistinct(USER_ID).alias("users"), F.count(F.lit(1)).alias("entries")).head()
    top = per_item.orderBy(F.desc("n"), "item_id").limit(head).agg(F.sum("n")).head()[0] or 0
    items = per_item.count()
    entries = totals["entries"]
    return {"users": totals["users"], "entries": entries, "items": items, "catalogue_items": catalogue_items,
            "coverage": items / catalogue_items, f"top_{head}_share": top / entries if entries else 0.0}


def plot_marginals(marginals: dict, ncols: int = 3):
    """Real vs synthetic distributions side by side, one panel per column, from
    recsynth.synth.report_html.marginals (Spark-computed bin and value counts)."""
    from matplotlib.figure import Figure

    if not marginals:
        raise ExploreError("no columns to plot")
    names = list(marginals)
    nrows = -(-len(names) // ncols)
    figure = Figure(figsize=(5.0 * ncols, 3.2 * nrows), dpi=72, layout="constrained")
    grid = figure.subplots(nrows, ncols, squeeze=False)
    for axes, name in zip(grid.flat, names):
        m = marginals[name]
        real, synthetic = _shares(m.real), _shares(m.synthetic)
        if m.edges is not None:
            centres = (np.asarray(m.edges[:-1]) + np.asarray(m.edges[1:])) / 2
            width = (m.edges[1] - m.edges[0]) / 2.2
            axes.bar(centres - width / 2, real, width=width, color=REAL_COLOUR, label="real")
            axes.bar(centres + width / 2, synthetic, width=width, color=SYNTHETIC_COLOUR, label="synthetic")
            axes.set_xlabel(name)
        else:
            x = np.arange(len(m.labels))
            axes.bar(x - 0.2, real, width=0.4, color=REAL_COLOUR, label="real")
            axes.bar(x + 0.2, synthetic, width=0.4, color=SYNTHETIC_COLOUR, label="synthetic")
            axes.set_xticks(x, [str(v)[:12] for v in m.labels], rotation=60, fontsize="small")
        axes.set_title(name)
        axes.set_ylabel("share of rows")
        axes.legend(fontsize="small")
    for axes in list(grid.flat)[len(names):]:
        axes.set_visible(False)
    return figure


def _shares(counts) -> np.ndarray:
    counts = np.asarray(counts, float)
    return counts / counts.sum() if counts.sum() else counts
