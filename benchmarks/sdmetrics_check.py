"""SDMetrics' QualityReport next to recsynth's Spark scores, on the rows bench_synth.py left.

SDMetrics is the yardstick users know (SDV/CTGAN); this checks that recsynth's column-shape and
pair-trend scores agree with it on the same training and synthetic rows. Two steps, because
SDMetrics lives in the benchmark-only environment (.cache/bench-ctgan-venv, where
bench_synth.py installed ctgan; add sdmetrics==0.32.0 there):

    .cache/bench-ctgan-venv/bin/python benchmarks/sdmetrics_check.py sdmetrics
    .venv/bin/python benchmarks/sdmetrics_check.py recsynth      # prints the table
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


def read(path: Path, columns: list[str]):
    import pandas as pd

    frame = pd.read_parquet(path, columns=columns)
    return frame


def sdmetrics_scores() -> dict:
    from sdmetrics.reports.single_table import QualityReport

    s = spec()
    columns = s["continuous"] + s["categorical"]
    metadata = {"columns": {**{c: {"sdtype": "numerical"} for c in s["continuous"]},
                            **{c: {"sdtype": "categorical"} for c in s["categorical"]}}}
    real = read(WORK / "train.parquet", columns)
    real[s["categorical"]] = real[s["categorical"]].astype(str)
    scores = {}
    for name, path in OUTPUTS.items():
        synthetic = read(path, columns)
        synthetic[s["categorical"]] = synthetic[s["categorical"]].astype(str)
        report = QualityReport()
        report.generate(real, synthetic, metadata, verbose=False)
        properties = report.get_properties().set_index("Property")["Score"]
        scores[name] = {"column_shapes": float(properties["Column Shapes"]),
                        "pair_trends": float(properties["Column Pair Trends"]), "overall": float(report.get_score())}
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
        out[name] = {"column_shapes": result.column_shapes, "pair_trends": result.pair_trends, "overall": result.overall}
    return out


def main(step: str) -> None:
    saved = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    saved[step] = sdmetrics_scores() if step == "sdmetrics" else recsynth_scores()
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(saved, indent=2))
    if {"sdmetrics", "recsynth"} <= set(saved):
        print("| generator | column shapes: SDMetrics / recsynth | pair trends: SDMetrics / recsynth | overall: SDMetrics / recsynth |")
        print("|---|---|---|---|")
        for name in OUTPUTS:
            a, b = saved["sdmetrics"][name], saved["recsynth"][name]
            print(f"| {name} | " + " | ".join(f"{a[k]:.3f} / {b[k]:.3f}" for k in ("column_shapes", "pair_trends", "overall")) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("sdmetrics", "recsynth"):
        sys.exit(__doc__)
    main(sys.argv[1])
