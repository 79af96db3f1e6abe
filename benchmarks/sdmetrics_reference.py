"""Reference scores from SDMetrics 0.32.0 (the library SDV uses) on a small fixed table pair.

recsynth reimplements SDMetrics' quality scores in Spark; this writes an independent answer key
for them. The rows are made here from a seeded generator and saved as CSV, so tests read exactly
the rows that were scored without regenerating them (or needing SDMetrics). The table exercises
the awkward cases: a zero-inflated column, nulls, a column that is constant only in the
synthetic table, synthetic values outside the real range, a rare category the synthetic table
lacks, and pairs on both sides of the report's correlation / association thresholds.

SDMetrics stays out of the project's environment; run it from a venv of its own:

    python -m venv /tmp/sdm-venv && /tmp/sdm-venv/bin/pip install sdmetrics==0.32.0
    /tmp/sdm-venv/bin/python benchmarks/sdmetrics_reference.py

Writes tests/data/sdmetrics_reference/{real,synthetic}.csv and scores.json.
"""
from __future__ import annotations

import json
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "sdmetrics_reference"
NUMERICAL = ["n_views", "spend", "duration", "const_syn", "price", "basket_value"]
CATEGORICAL = ["source", "purchased", "top_category"]
COLUMNS = ["n_views", "source", "spend", "duration", "purchased", "const_syn", "price",
           "basket_value", "top_category"]
SOURCES, CATEGORIES = ["search", "ads", "direct"], ["books", "toys", "music", "garden"]


def make_table(rng: np.random.Generator, n: int, synthetic: bool) -> pd.DataFrame:
    """One table; `synthetic` shifts it the way a decent but imperfect generator would."""
    source = rng.choice(SOURCES, n, p=[0.45, 0.35, 0.2] if synthetic else [0.5, 0.3, 0.2])
    # Views depend on source, purchases on views and source, so some pairs clear the thresholds.
    base = np.select([source == "search", source == "ads"], [4.0, 2.0], 1.0)
    n_views = rng.poisson(base * (1.3 if synthetic else 1.0))
    purchased = rng.random(n) < np.clip((n_views - 2) / 8 + 0.3 * (source == "search"), 0.02, 0.9)
    # Zero-inflated: ~97% zeros in the real table, only buyers spend.
    spend = np.where(purchased & (rng.random(n) < (0.1 if synthetic else 0.07)),
                     np.round(rng.lognormal(3, 1, n), 2), 0.0)
    duration = np.round(rng.gamma(2.0, 30.0, n), 3)
    duration[rng.random(n) < (0.08 if synthetic else 0.05)] = np.nan
    const_syn = np.full(n, 5.0) if synthetic else np.round(rng.normal(5, 1, n), 3)
    price = np.round(rng.uniform(1, 50, n), 2)
    noise = rng.normal(0, 40 if synthetic else 15, n)
    basket_value = np.round(2 * price + noise, 2)
    category = rng.choice(CATEGORIES[:3], n).astype(object)
    if not synthetic:  # the rare value that the synthetic table never produces
        category[rng.choice(n, 3, replace=False)] = "garden"
    category[rng.random(n) < 0.03] = None
    frame = pd.DataFrame({
        "n_views": n_views, "source": source, "spend": spend, "duration": duration,
        "purchased": np.where(purchased, "True", "False"), "const_syn": const_syn,
        "price": price, "basket_value": basket_value, "top_category": category})
    if synthetic:  # out of the real range on both sides
        frame.loc[:4, "n_views"] += 25
        frame.loc[5, "spend"] = -12.5
        frame.loc[6:8, "price"] = [-3.0, 61.5, 75.25]
    return frame[COLUMNS]


def write_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write both CSVs and read them back, so SDMetrics scores exactly what tests will read."""
    rng = np.random.default_rng(20240601)
    OUT.mkdir(parents=True, exist_ok=True)
    frames = []
    for name, n, synthetic in (("real", 400, False), ("synthetic", 300, True)):
        path = OUT / f"{name}.csv"
        make_table(rng, n, synthetic).to_csv(path, index=False)
        # Categoricals as strings ("True" must not become a bool); empty cell = null.
        frames.append(pd.read_csv(path, dtype={c: str for c in CATEGORICAL}))
    return frames[0], frames[1]


def _num(value) -> float | None:
    return None if pd.isna(value) else float(value)


def quality(real, synthetic, metadata, threshold: float | None) -> dict:
    """One QualityReport run; `threshold` None keeps the shipped thresholds, else sets both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation of the single-table alias, constant-input
        from sdmetrics.reports.single_table import QualityReport
        report = QualityReport()
        if threshold is not None:
            report.real_correlation_threshold = report.real_association_threshold = threshold
        report.generate(real, synthetic, metadata, verbose=False)
    trends = report._properties["Column Pair Trends"]
    assert (trends.real_correlation_threshold, trends.real_association_threshold) == (
        report.real_correlation_threshold, report.real_association_threshold)
    props = report.get_properties().set_index("Property")["Score"]
    shapes, pairs = report.get_details("Column Shapes"), report.get_details("Column Pair Trends")
    return {
        "real_correlation_threshold": report.real_correlation_threshold,
        "real_association_threshold": report.real_association_threshold,
        "column_shapes": _num(props["Column Shapes"]),
        "column_pair_trends": _num(props["Column Pair Trends"]),
        "columns": {r["Column"]: _num(r["Score"]) for _, r in shapes.iterrows()},
        "pairs": {f"{r['Column 1']}|{r['Column 2']}": _num(r["Score"]) for _, r in pairs.iterrows()},
        "pair_details": {f"{r['Column 1']}|{r['Column 2']}": {
            "metric": r["Metric"], "real_correlation": _num(r["Real Correlation"]),
            "synthetic_correlation": _num(r["Synthetic Correlation"]),
            "real_association": _num(r["Real Association"]),
            "meets_threshold": None if pd.isna(r["Meets Threshold?"]) else bool(r["Meets Threshold?"]),
            "error": r.get("Error") if isinstance(r.get("Error"), str) else None,
        } for _, r in pairs.iterrows()},
    }


def main() -> None:
    from sdmetrics.column_pairs import ContingencySimilarity
    from sdmetrics.single_column import CategoryCoverage, RangeCoverage

    real, synthetic = write_tables()
    metadata = {"columns": {c: {"sdtype": "numerical" if c in NUMERICAL else "categorical"}
                            for c in COLUMNS}}
    scores = {
        "versions": {p: version(p) for p in ("sdmetrics", "pandas", "numpy", "scipy")},
        "rows": {"real": len(real), "synthetic": len(synthetic)},
        "columns": {"numerical": NUMERICAL, "categorical": CATEGORICAL, "order": COLUMNS},
        "default_thresholds": quality(real, synthetic, metadata, None),
        "every_pair": quality(real, synthetic, metadata, 0),
        "range_coverage": {c: _num(RangeCoverage.compute(real[c], synthetic[c])) for c in NUMERICAL},
        "category_coverage": {c: _num(CategoryCoverage.compute(real[c], synthetic[c]))
                              for c in CATEGORICAL},
        # The report bins each table by its own 10 equal-width edges; the standalone metric
        # bins both by the real edges with open ends. Kept for comparison, not in the report.
        "mixed_pairs_real_edges": {f"{a}|{b}": _num(ContingencySimilarity.compute(
            real[[a, b]], synthetic[[a, b]], continuous_column_names=[a if a in NUMERICAL else b]))
            for i, a in enumerate(COLUMNS) for b in COLUMNS[i + 1:]
            if (a in NUMERICAL) != (b in NUMERICAL)},
    }
    (OUT / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
    print(json.dumps({k: scores[k] for k in ("range_coverage", "category_coverage")}, indent=1))
    for label in ("default_thresholds", "every_pair"):
        s = scores[label]
        print(label, "shapes", s["column_shapes"], "pair trends", s["column_pair_trends"])


if __name__ == "__main__":
    main()
