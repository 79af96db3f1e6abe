"""SDMetrics' QualityReport next to recsynth's Spark scores, on the rows bench_synth.py left.

SDMetrics is the yardstick users know (SDV/CTGAN); this checks that recsynth's column-shape and
pair-trend scores agree with it on the same training and synthetic rows. Two steps, because
SDMetrics lives in the benchmark-only environment (.cache/bench-ctgan-venv, where
bench_synth.py installed ctgan; add sdmetrics==0.32.0 there):

    .cache/bench-ctgan-venv/bin/python benchmarks/sdmetrics_check.py sdmetrics
    .venv/bin/python benchmarks/sdmetrics_check.py recsynth      # prints the tables

Pair trends are compared pair by pair, because SDMetrics' QualityReport averages only the pairs
whose real relation is strong (|correlation| > 0.5, Cramer's V > 0.3) and scores the rest NaN,
while recsynth averages every pair. The report is therefore run twice: as shipped, and with both
thresholds at 0 (every pair scored). Two continuous columns (correlation similarity) and two
categorical columns (contingency similarity) are scored by the same definition on both sides;
a pair with a continuous column is binned differently (SDMetrics: 10 equal-width bins, recsynth:
real deciles), so those are reported apart.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

WORK = Path("/tmp/recsynth-bench-synth")
OUTPUTS = {"recsynth GAN": WORK / "recsynth", "independent marginals": WORK / "marginals", "ctgan 0.12.1": WORK / "ctgan.parquet"}
RESULT = Path(__file__).with_name("results") / "sdmetrics_check.json"


def spec() -> dict:
    return json.loads((WORK / "ctgan-spec.json").read_text())


def pair_key(a: str, b: str, columns: list[str]) -> str:
    """One spelling per unordered pair, in the order of `columns`."""
    return "|".join(sorted((a, b), key=columns.index))


def sdmetrics_scores() -> dict:
    import pandas as pd
    from sdmetrics.reports.single_table import QualityReport

    s = spec()
    columns = s["continuous"] + s["categorical"]
    metadata = {"columns": {**{c: {"sdtype": "numerical"} for c in s["continuous"]},
                            **{c: {"sdtype": "categorical"} for c in s["categorical"]}}}

    def frame(path):
        data = pd.read_parquet(path, columns=columns)
        data[s["categorical"]] = data[s["categorical"]].astype(str)
        return data

    real, scores = frame(WORK / "train.parquet"), {}
    for name, path in OUTPUTS.items():
        synthetic, result = frame(path), {}
        for label, thresholds in (("as_shipped", None), ("every_pair", 0.0)):
            report = QualityReport()
            if thresholds is not None:
                report.real_correlation_threshold = report.real_association_threshold = thresholds
            report.generate(real, synthetic, metadata, verbose=False)
            properties = report.get_properties().set_index("Property")["Score"]
            details = report.get_details("Column Pair Trends")
            result[label] = {
                "column_shapes": float(properties["Column Shapes"]), "pair_trends": float(properties["Column Pair Trends"]),
                "overall": float(report.get_score()),
                "pairs": {pair_key(r["Column 1"], r["Column 2"], columns): (None if pd.isna(r["Score"]) else float(r["Score"]))
                          for _, r in details.iterrows()}}
        scores[name] = result
    return scores


def recsynth_scores() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import ROOT, lake_overrides

    from recsynth.config import load_conf
    from recsynth.session import get_spark
    from recsynth.synth.metrics import score

    s = spec()
    spark = get_spark(load_conf("local", lake_overrides(WORK / "sdcheck"), ROOT / "conf"))
    columns = s["continuous"] + s["categorical"]
    real = spark.read.parquet(str(WORK / "train.parquet")).select(*columns)
    out = {}
    for name, path in OUTPUTS.items():
        result = score(real, spark.read.parquet(str(path)).select(*columns), s["continuous"], s["categorical"])
        out[name] = {"column_shapes": result.column_shapes, "pair_trends": result.pair_trends, "overall": result.overall,
                     "pairs": {pair_key(a, b, columns): value for (a, b), value in result.pairs.items()}}
    return out


def _mean(values) -> str:
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.3f} ({len(values)})" if values else "–"


def comparison(saved: dict) -> str:
    """Markdown: whole-report figures, then pair trends by kind of pair on the pairs both score."""
    s = spec()
    continuous = set(s["continuous"])
    lines = ["| generator | column shapes: SDMetrics / recsynth | pair trends, SDMetrics as shipped (pairs) "
             "| pair trends, every pair: SDMetrics / recsynth |", "|---|---|---|---|"]
    kinds = {"continuous x continuous": 2, "categorical x categorical": 0, "continuous x categorical": 1}
    by_kind = ["| generator | " + " | ".join(f"{k}: SDMetrics / recsynth (pairs), max abs diff" for k in kinds) + " |",
               "|---|" + "---|" * len(kinds)]
    for name in OUTPUTS:
        shipped, every, ours = saved["sdmetrics"][name]["as_shipped"], saved["sdmetrics"][name]["every_pair"], saved["recsynth"][name]
        scored = [v for v in shipped["pairs"].values() if v is not None]
        lines.append(f"| {name} | {shipped['column_shapes']:.3f} / {ours['column_shapes']:.3f} | {shipped['pair_trends']:.3f} "
                     f"({len(scored)} of {len(shipped['pairs'])}) | {every['pair_trends']:.3f} / {ours['pair_trends']:.3f} |")
        cells = []
        for wanted in kinds.values():
            pairs = [p for p in ours["pairs"] if sum(c in continuous for c in p.split("|")) == wanted
                     and every["pairs"].get(p) is not None and ours["pairs"][p] is not None]
            gaps = [abs(every["pairs"][p] - ours["pairs"][p]) for p in pairs]
            cells.append(f"{_mean(every['pairs'][p] for p in pairs)} / {_mean(ours['pairs'][p] for p in pairs)}, "
                         + (f"{max(gaps):.3f}" if gaps else "–"))
        by_kind.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + by_kind)


def main(step: str) -> None:
    saved = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    saved[step] = sdmetrics_scores() if step == "sdmetrics" else recsynth_scores()
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(saved, indent=2))
    if {"sdmetrics", "recsynth"} <= set(saved) and "as_shipped" in next(iter(saved["sdmetrics"].values())):
        print(comparison(saved))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("sdmetrics", "recsynth"):
        sys.exit(__doc__)
    main(sys.argv[1])
