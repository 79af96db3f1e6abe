"""SDMetrics 0.32's own QualityReport, RangeCoverage and CategoryCoverage on the CSVs that
`bench_synth_fidelity.py --export DIR` wrote (training people, independent marginals, the
published recsynth table), plus the identities and rare shares computed with pandas, so no
figure rests on recsynth's scorer alone. SDMetrics cannot live beside recsynth's pins:

    python3 -m venv /tmp/sdm-venv && /tmp/sdm-venv/bin/pip install sdmetrics==0.32.0
    /tmp/sdm-venv/bin/python benchmarks/sdmetrics_score.py DIR
"""
import json
import sys
from pathlib import Path

import pandas as pd
from sdmetrics.reports.single_table import QualityReport
from sdmetrics.single_column import CategoryCoverage, RangeCoverage

CONTINUOUS = ["duration_s", "n_events", "n_views", "n_carts", "n_purchases", "n_items", "n_categories", "mean_price",
              "max_price", "spend"]
CATEGORICAL = ["source", "start_hour", "day_of_week", "top_category", "purchased"]
RARE = {"paid_purchase": lambda t: t.spend > 0, "several_categories": lambda t: t.n_categories > 1,
        "purchase": lambda t: t.purchased.astype(str).str.lower() == "true", "cart": lambda t: t.n_carts > 0,
        "priced": lambda t: t.mean_price.notna()}


def identities(t: pd.DataFrame) -> float:
    """Share of rows where all four identities hold (max >= mean up to float rounding)."""
    purchased = t.purchased.astype(str).str.lower() == "true"
    ok = (t.n_events == t.n_views + t.n_carts + t.n_purchases) & (purchased == (t.n_purchases > 0))
    ok &= (t.spend == 0) | purchased
    ok &= (t.max_price >= t.mean_price - 1e-9 * t.mean_price.abs()) | (t.max_price.isna() & t.mean_price.isna())
    return float(ok.mean())


def main(folder: Path) -> None:
    metadata = {"columns": {**{c: {"sdtype": "numerical"} for c in CONTINUOUS}, **{c: {"sdtype": "categorical"} for c in CATEGORICAL}}}

    def read(name):
        t = pd.read_csv(folder / f"{name}.csv", dtype={c: str for c in CATEGORICAL}, keep_default_na=False,
                        na_values={c: [""] for c in CONTINUOUS + CATEGORICAL})
        return t[CONTINUOUS + CATEGORICAL]

    real, results = read("train"), {}
    for name in ("recsynth", "marginals"):
        synthetic = read(name)
        report = QualityReport()
        report.generate(real, synthetic, metadata, verbose=False)
        properties = report.get_properties().set_index("Property")["Score"]
        results[name] = {
            "rows": len(synthetic), "column_shapes": float(properties["Column Shapes"]),
            "column_pair_trends": float(properties["Column Pair Trends"]),
            "range_coverage": float(pd.Series([RangeCoverage.compute(real[c], synthetic[c]) for c in CONTINUOUS]).mean()),
            "category_coverage": float(pd.Series([CategoryCoverage.compute(real[c], synthetic[c]) for c in CATEGORICAL]).mean()),
            "identities": identities(synthetic),
            "rare_share_ratios": {k: float(f(synthetic).mean() / f(real).mean()) for k, f in RARE.items()}}
    results["real"] = {"rows": len(real), "identities": identities(real), "rare_shares": {k: float(f(real).mean()) for k, f in RARE.items()}}
    print(json.dumps(results, indent=1))
    (folder / "sdmetrics_scores.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
