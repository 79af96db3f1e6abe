"""The synthetic-data quality report: one self-contained HTML file (plots embedded as base64
PNG) with the scores, ML efficacy, privacy measures, real-vs-synthetic marginals and the
correlation heat maps. Plot data are Spark aggregates (bin counts over shared edges, top
categories), so the report costs two passes over the tables whatever their size.

Plots are drawn on matplotlib Figures with the Agg canvas (no pyplot, no global backend), and
every piece of text that comes from the data is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
from dataclasses import dataclass

import fsspec
import matplotlib
import numpy as np
from fsspec.implementations.local import LocalFileSystem
from matplotlib.figure import Figure
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsynth.paths import python_io_uri
from recsynth.synth.efficacy import EfficacyScores
from recsynth.synth.fidelity import Fidelity
from recsynth.synth.metrics import SIDE, QualityScores, _real, _sizes, _size_aggs, _synthetic, _tagged
from recsynth.synth.transformer import NULL, OTHER

BINS = 30
TOP_CATEGORIES = 20
LABEL_CHARS = 30
VALUE_CHARS = 300
MODEL_NAMES = {"logistic": "a lasso logistic regression", "gbt": "gradient-boosted trees"}
REAL_COLOUR, SYNTHETIC_COLOUR = "#1f77b4", "#ff7f0e"


@dataclass
class Marginal:
    """Counts of one column in both tables: per bin (continuous, `edges` set) or per value."""
    column: str
    labels: list[str]           # bin labels or category values (OTHER and NULL included where they occur)
    real: list[int]
    synthetic: list[int]
    edges: list[float] | None = None  # continuous: bin edges; the outer bins also hold the tails
    real_nulls: int = 0               # continuous: nulls, not in the bins
    synthetic_nulls: int = 0


def bin_index(value: Column, lo: float, hi: float, bins: int) -> Column:
    """The equal-width bin (0..bins-1) of `value` over [lo, hi], outliers in the outer bins; null
    stays null (greatest() skips nulls, so a null must not reach it: it would land in bin 0)."""
    return F.when(value.isNotNull(), F.least(F.greatest(
        F.floor((value - F.lit(lo)) / F.lit((hi - lo) / bins)), F.lit(0)), F.lit(bins - 1))).cast("int")


def marginals(real: DataFrame, synthetic: DataFrame, continuous: list[str], categorical: list[str], *,
              bins: int = BINS, top: int = TOP_CATEGORIES) -> dict[str, Marginal]:
    """Per column, bin counts (continuous: `bins` equal-width bins between the 1st and 99th
    percentile of both tables together, tails in the outer bins) or counts of the `top` most
    frequent values, the rest folded into OTHER. Two Spark passes; bounded results."""
    tagged = _tagged(real, synthetic, continuous, categorical)
    stats = tagged.agg(*_size_aggs(), *[agg for c in continuous for agg in (
        F.percentile_approx(c, [0.01, 0.99], 10_000).alias(f"{c}__q"), F.min(c).alias(f"{c}__min"),
        F.max(c).alias(f"{c}__max"))]).head()
    n_real, n_synthetic = _sizes(stats)
    edges, labels = {}, {}
    for c in continuous:
        lo, hi = stats[f"{c}__q"] or (0.0, 0.0)
        if hi <= lo:
            lo, hi = stats[f"{c}__min"] or 0.0, stats[f"{c}__max"] or 0.0
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges[c] = np.linspace(lo, hi, bins + 1).tolist()
        labels[c] = F.coalesce(bin_index(F.col(c), lo, hi, bins).cast("string"), F.lit(NULL))
    for c in categorical:
        labels[c] = F.coalesce(F.col(c), F.lit(NULL))
    if not labels:
        return {}
    cells = tagged.select(SIDE, F.explode(F.array(*[
        F.struct(F.lit(c).alias("column"), label.alias("label")) for c, label in labels.items()])).alias("cell"))
    counts = cells.groupBy("cell.column", "cell.label").agg(
        F.count(_real(F.lit(1))).alias("r"), F.count(_synthetic(F.lit(1))).alias("s"))
    rank = F.row_number().over(Window.partitionBy("column").orderBy(F.desc("r"), F.desc("s"), "label"))
    limit = F.when(F.col("column").isin(*continuous), F.lit(bins + 1)).otherwise(F.lit(top)) if continuous else F.lit(top)
    rows = counts.withColumn("rank", rank).filter(F.col("rank") <= limit).collect()

    found = {c: {} for c in labels}
    for row in rows:
        found[row["column"]][row["label"]] = (row["r"], row["s"])
    result = {}
    for c in continuous:
        per_bin = [found[c].get(str(k), (0, 0)) for k in range(bins)]
        result[c] = Marginal(c, [f"{edges[c][k]:.4g}" for k in range(bins)], [r for r, _ in per_bin], [s for _, s in per_bin],
                             edges[c], *found[c].get(NULL, (0, 0)))
    for c in categorical:
        values = sorted(found[c], key=lambda v: (-found[c][v][0], -found[c][v][1], v))
        r, s = [found[c][v][0] for v in values], [found[c][v][1] for v in values]
        if sum(r) < n_real or sum(s) < n_synthetic:
            values, r, s = values + [OTHER], r + [n_real - sum(r)], s + [n_synthetic - sum(s)]
        result[c] = Marginal(c, values, r, s)
    return result


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _shares(counts: list[int]) -> np.ndarray:
    counts = np.asarray(counts, float)
    return counts / counts.sum() if counts.sum() else counts


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _marginal_plot(m: Marginal, score: float | None) -> str:
    figure = Figure(figsize=(6.4, 3.2), dpi=80)
    axes = figure.subplots()
    real, synthetic = _shares(m.real), _shares(m.synthetic)
    if m.edges is not None:
        widths = np.diff(m.edges)
        axes.bar(m.edges[:-1], real, width=widths, align="edge", alpha=0.5, color=REAL_COLOUR, label="real")
        axes.step(m.edges, np.append(synthetic, synthetic[-1:]), where="post", color=SYNTHETIC_COLOUR, label="synthetic")
        axes.set_xlabel(m.column + " (outer bins hold the tails)")
        axes.set_ylabel("share of non-null rows")
    else:
        y = np.arange(len(m.labels))
        axes.barh(y - 0.2, real, height=0.4, color=REAL_COLOUR, label="real")
        axes.barh(y + 0.2, synthetic, height=0.4, color=SYNTHETIC_COLOUR, label="synthetic")
        axes.set_yticks(y, [_short(v) for v in m.labels])
        axes.invert_yaxis()
        axes.set_xlabel("share of rows")
        figure.set_size_inches(6.4, max(2.4, 0.3 * len(m.labels) + 1.0))
    axes.set_title(m.column + ("" if score is None else f" (shape score {score:.3f})"))
    axes.legend(loc="best", fontsize="small")
    return _png(figure)


def _heat_maps(scores: QualityScores) -> str | None:
    names = scores.continuous
    if len(names) < 2 or not scores.correlations:
        return None
    matrices = np.full((2, len(names), len(names)), np.nan)
    for side in range(2):
        np.fill_diagonal(matrices[side], 1.0)
    for (a, b), values in scores.correlations.items():
        i, j = names.index(a), names.index(b)
        for side, value in enumerate(values):
            matrices[side, i, j] = matrices[side, j, i] = np.nan if value is None else value
    size = max(4.0, 0.45 * len(names) + 2.5)
    figure = Figure(figsize=(2 * size + 1, size), dpi=80, layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, matrix, title in zip(axes, matrices, ("real", "synthetic")):
        image = ax.imshow(np.ma.masked_invalid(matrix), vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_xticks(range(len(names)), [_short(n) for n in names], rotation=90)
        ax.set_yticks(range(len(names)), [_short(n) for n in names] if title == "real" else [])
        ax.set_title(f"Pearson correlation, {title}")
        if len(names) <= 12:
            for i in range(len(names)):
                for j in range(len(names)):
                    if not math.isnan(matrix[i, j]):
                        ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=list(axes), shrink=0.8)
    return _png(figure)


def _text(value) -> str:
    """A value as escaped HTML text: numbers rounded, nan as n/a, long values cut."""
    if isinstance(value, float):
        text = "n/a" if math.isnan(value) else f"{value:.4f}"
    else:
        text = str(value)
        text = text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"
    return html.escape(text)


def _table(rows, header: tuple[str, ...] = ()) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _image(data: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f0f0f0}.column{margin-bottom:2em}
.note{color:#a33}"""


def _efficacy_section(efficacy: EfficacyScores) -> list[str]:
    model = MODEL_NAMES.get(efficacy.model, efficacy.model)
    return [f"<h2>ML efficacy</h2><p>Predicting <b>{_text(efficacy.target)}</b> on real holdout rows with {_text(model)} "
            f"on {_text(', '.join(efficacy.features))}; left out as revealing the target: "
            f"{_text(', '.join(efficacy.excluded) or 'none')}.</p>",
            _table([("synthetic", efficacy.synthetic_auc, efficacy.synthetic_f1), ("real", efficacy.real_auc, efficacy.real_f1)],
                   ("trained on", "AUC", "F1")),
            *[f'<p class="note">{_text(note)}</p>' for note in efficacy.notes]]


def _marginal_section(m: Marginal, score: float | None) -> list[str]:
    if m.edges is not None:
        nulls = [("null share", m.real_nulls / max(sum(m.real) + m.real_nulls, 1),
                  m.synthetic_nulls / max(sum(m.synthetic) + m.synthetic_nulls, 1))]
        table = _table(nulls, ("", "real", "synthetic"))
    else:
        table = _table(zip(m.labels, _shares(m.real).tolist(), _shares(m.synthetic).tolist()),
                       ("value", "real share", "synthetic share"))
    return [f'<div class="column"><h3>{_text(m.column)}</h3>', _image(_marginal_plot(m, score), f"{m.column}: real and synthetic"),
            table, "</div>"]


def _fidelity_section(fidelity: Fidelity) -> list[str]:
    ratios = fidelity.rare_share_ratios()
    return ["<h2>Constraints</h2>", _table([(c, r, s) for c, (r, s) in fidelity.constraint_validity.items()],
                                           ("condition", "real rows satisfying", "synthetic rows satisfying")),
            "<h2>Rare shares</h2>", _table([(name, r, s, ratios[name]) for name, (r, s) in fidelity.rare_shares.items()],
                                           ("rare kind", "real share", "synthetic share", "synthetic / real")),
            "<h2>Coverage</h2>", _table([(c, v, "range") for c, v in fidelity.range_coverage.items()]
                                        + [(c, v, "categories") for c, v in fidelity.category_coverage.items()],
                                        ("column", "coverage", "of"))]


def render_report(real: DataFrame, synthetic: DataFrame, scores: QualityScores, efficacy: EfficacyScores | None,
                  privacy: dict, meta: dict, *, bins: int = BINS, top: int = TOP_CATEGORIES,
                  fidelity: Fidelity | None = None) -> str:
    """The report as one HTML string."""
    summary = [("Column shapes", scores.column_shapes), ("Column pair trends", scores.pair_trends),
               ("Overall quality", scores.overall),
               ("Column pair trends as SDMetrics' QualityReport scores them (strong real pairs only)",
                scores.pair_trends_sdmetrics)]
    if efficacy is not None:
        summary.append(("ML efficacy: AUC ratio (synthetic / real)", efficacy.auc_ratio))
    parts = ["<h1>Synthetic data quality report</h1>", _table(meta.items(), ("run", "")),
             "<h2>Summary</h2>", _table(summary, ("score", "value"))]
    if efficacy is not None:
        parts += _efficacy_section(efficacy)
    if fidelity is not None:
        parts += _fidelity_section(fidelity)
    parts += ["<h2>Privacy</h2>", _table(privacy.items(), ("measure", "value")),
              "<h2>Column shapes</h2>", _table([(c, value, "KS" if c in scores.continuous else "TVD")
                                                for c, value in scores.columns.items()], ("column", "score", "metric"))]
    if scores.pairs:
        worst_first = sorted(scores.pairs.items(), key=lambda item: item[1])
        rows = [(a, b, value, "correlation" if (a, b) in scores.correlations else "contingency") for (a, b), value in worst_first]
        parts += ["<h2>Column pair trends</h2>", _table(rows, ("column", "column", "score", "metric"))]
    with matplotlib.rc_context({"text.parse_math": False}):  # '$' in a value is text, not maths
        heat = _heat_maps(scores)
        if heat:
            parts += ["<h2>Correlations of continuous columns</h2>", _image(heat, "correlation heat maps, real and synthetic")]
        parts.append("<h2>Marginals</h2>")
        for c, m in marginals(real, synthetic, scores.continuous, scores.categorical, bins=bins, top=top).items():
            parts += _marginal_section(m, scores.columns.get(c))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Synthetic data quality report</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_report(uri: str, real: DataFrame, synthetic: DataFrame, scores: QualityScores, efficacy: EfficacyScores | None,
                 privacy: dict, meta: dict, *, bins: int = BINS, top: int = TOP_CATEGORIES,
                 storage_options: dict | None = None, fidelity: Fidelity | None = None) -> str:
    """Render the report and write it to `uri`, any fsspec URL (`storage_options` go to its file
    system; a `dbfs:` URI is written through the /dbfs mount). Local parent folders are created. Returns `uri`."""
    text = render_report(real, synthetic, scores, efficacy, privacy, meta, bins=bins, top=top, fidelity=fidelity)
    target = python_io_uri(uri)
    fs, path = fsspec.core.url_to_fs(target, **(storage_options or {}))
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with fsspec.open(target, "w", encoding="utf-8", **(storage_options or {})) as handle:
        handle.write(text)
    return uri
