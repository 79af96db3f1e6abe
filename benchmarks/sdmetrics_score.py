"""Independent scores in one run: SDMetrics 0.32's own QualityReport, RangeCoverage and
CategoryCoverage, and ctgan 0.12.1 (the peer generator) trained on the same training people, on
the tables that `bench_synth_fidelity.py --export DIR` wrote (training people, independent
marginals, the published recsynth table, table.json). The identities (the conf's constraints)
and rare shares are evaluated by DuckDB here, so no figure rests on recsynth's own scorer.
SDMetrics and ctgan (PyTorch) cannot live beside recsynth's pins, so they get their own venv:

    python3 -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install torch==2.5.1 sdmetrics==0.32.0 ctgan==0.12.1 duckdb==1.1.3
    /tmp/peer-venv/bin/python benchmarks/sdmetrics_score.py DIR [--ctgan-epochs 300]

ctgan gets the recsynth conf's batch size, pac, network sizes and learning rate (table.json);
its epochs are SDV's default unless given. Its rows are kept in DIR/ctgan.csv and reused by a
re-run with the same epochs. Writes DIR/sdmetrics_scores.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import duckdb
import pandas as pd
from sdmetrics.reports.single_table import QualityReport
from sdmetrics.single_column import CategoryCoverage, RangeCoverage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth import ctgan_sample  # noqa: E402  (the one ctgan fit, shared with bench_synth.py)


def read(folder: Path, name: str, table: dict) -> pd.DataFrame:
    continuous, categorical = table["continuous"], table["categorical"]
    frame = pd.read_csv(folder / f"{name}.csv", dtype={c: str for c in categorical}, keep_default_na=False,
                        na_values={c: [""] for c in continuous + categorical})
    return frame[continuous + categorical]


def share_where(frame: pd.DataFrame, conditions: list[str], categorical: list[str]) -> float:
    """Share of rows where every condition holds; unknown (null) counts as failing, as in recsynth."""
    typed = frame.copy()
    for c in categorical:  # 'True'/'False' text back to booleans, so `purchased = (n_purchases > 0)` reads
        values = set(typed[c].dropna().str.lower())
        if values and values <= {"true", "false"}:
            typed[c] = typed[c].str.lower().map({"true": True, "false": False})
    where = " AND ".join(f"COALESCE(({c}), FALSE)" for c in conditions) or "TRUE"
    return float(duckdb.query_df(typed, "t", f"SELECT AVG(CAST({where} AS INT)) FROM t").fetchone()[0])


def ctgan_rows(folder: Path, real: pd.DataFrame, table: dict, epochs: int) -> tuple[pd.DataFrame, dict]:
    facts_path, rows_path = folder / "ctgan.json", folder / "ctgan.csv"
    if facts_path.is_file() and json.loads(facts_path.read_text()).get("epochs") == epochs:
        return read(folder, "ctgan", table), json.loads(facts_path.read_text())
    spec = {**table["gan"], "epochs": epochs, "continuous": table["continuous"], "categorical": table["categorical"],
            "rows": len(real), "threads": os.cpu_count()}
    synthetic, facts = ctgan_sample(real, spec)
    synthetic.to_csv(rows_path, index=False)
    facts_path.write_text(json.dumps({**facts, "epochs": epochs}))
    return read(folder, "ctgan", table), {**facts, "epochs": epochs}


def scores(real: pd.DataFrame, synthetic: pd.DataFrame, table: dict) -> dict:
    continuous, categorical = table["continuous"], table["categorical"]
    metadata = {"columns": {**{c: {"sdtype": "numerical"} for c in continuous},
                            **{c: {"sdtype": "categorical"} for c in categorical}}}
    report = QualityReport()
    report.generate(real, synthetic, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "rows": len(synthetic), "column_shapes": float(properties["Column Shapes"]),
        "column_pair_trends": float(properties["Column Pair Trends"]),
        "range_coverage": float(pd.Series([RangeCoverage.compute(real[c], synthetic[c]) for c in continuous]).mean()),
        "category_coverage": float(pd.Series([CategoryCoverage.compute(real[c], synthetic[c]) for c in categorical]).mean()),
        "identities": share_where(synthetic, table["constraints"], categorical),
        "rare_share_ratios": {k: share_where(synthetic, [w], categorical) / share_where(real, [w], categorical)
                              for k, w in table["rare_shares"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the folder `bench_synth_fidelity.py --export` wrote")
    parser.add_argument("--ctgan-epochs", type=int, default=300, help="ctgan's epochs (default 300, SDV's; 0: no ctgan)")
    args = parser.parse_args()
    table = json.loads((args.folder / "table.json").read_text())
    real = read(args.folder, "train", table)
    generators = {name: read(args.folder, name, table) for name in ("recsynth", "marginals")}
    facts = {}
    if args.ctgan_epochs:
        generators["ctgan"], facts = ctgan_rows(args.folder, real, table, args.ctgan_epochs)
    results = {name: scores(real, synthetic, table) for name, synthetic in generators.items()}
    if facts:
        results["ctgan"]["fit"] = facts
    results["real"] = {"rows": len(real), "identities": share_where(real, table["constraints"], table["categorical"]),
                       "rare_shares": {k: share_where(real, [w], table["categorical"]) for k, w in table["rare_shares"].items()}}
    print(json.dumps(results, indent=1))
    (args.folder / "sdmetrics_scores.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
