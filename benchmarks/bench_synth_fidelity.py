"""The synthesize job's own scores of its GAN runs beside independent marginals, scored the same
way on the same training people: column shapes and pair trends (ours, every pair, and as
SDMetrics' QualityReport counts them; both checked against SDMetrics 0.32 in
tests/test_quality_metrics.py), constraint validity, coverage and the rare shares of
`synth.quality.rare_shares` against the issue's targets.

Run `recsynth synthesize` (as many times and confs as wanted: every run, published or refused by
a gate, leaves its scores in <lake.root>/models/gan/<run id>/meta.json), then

    .venv/bin/python benchmarks/bench_synth_fidelity.py [--set KEY=VALUE ...] [--runs 3]

Prints a markdown table of the last `--runs` runs and the marginals, and writes
benchmarks/results/synth_fidelity_<date>.json. `--export DIR` also writes the training people's
rows, the marginals and the published `synthetic.behavior` as CSV there, with the table's columns,
constraints and rare kinds (table.json), for SDMetrics itself and ctgan trained on the same rows
(benchmarks/sdmetrics_score.py, in their own venv).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
from pathlib import Path

from conf_options import conf_parser, load

ROOT = Path(__file__).resolve().parents[1]
TARGETS = "targets: shapes >= 0.97; pair trends >= 0.90 and >= marginals + 0.1; identities 100%; rare shares 0.5-2x, purchase 0.8-1.25x"


def marginals_scores(spark, conf, export: Path | None = None) -> dict:
    """Independent marginals drawn from the training people (split as the job splits), scored."""
    from recsynth import tables as T
    from recsynth.lake import Lake
    from recsynth.synth.baselines import independent_marginals
    from recsynth.synth.fidelity import assess
    from recsynth.synth.metrics import score
    from recsynth.synth.privacy import split_by_person
    from recsynth.tasks.synthesize import learned_rows

    s = conf.synth
    columns = [*s.continuous, *s.categorical]
    lake = Lake(spark, conf)
    behavior = learned_rows(lake.read(T.GOLD_BEHAVIOR), s, lake.read(T.GOLD_SPLITS), conf.synth_periods,
                            lake.read(T.SILVER_ITEMS))  # as the job
    train, _ = split_by_person(behavior, s.holdout_fraction)
    train, _ = split_by_person(train, s.validation_fraction, salt="validation")
    train = train.select(*columns).cache()
    synthetic = independent_marginals(spark, train, s.continuous, s.categorical, train.count(), s.sample_partitions,
                                      s.seed).select(*columns).cache()
    if export:
        g = s.gan
        (export / "table.json").write_text(json.dumps({  # what the independent scorer needs to know of the table
            "continuous": s.continuous, "categorical": s.categorical, "constraints": s.constraints,
            "rare_shares": {name: r.where for name, r in s.quality.rare_shares.items()},
            "gan": {"epochs": g.epochs, "batch_size": g.batch_size, "pac": g.pac, "embedding_dim": g.embedding_dim,
                    "generator_dims": g.generator_dims, "discriminator_dims": g.discriminator_dims,
                    "learning_rate": g.learning_rate, "seed": s.seed}}, indent=1) + "\n")
        for name, frame in (("train", train), ("marginals", synthetic), ("recsynth", Lake(spark, conf).read(T.SYNTHETIC_BEHAVIOR))):
            frame.select(*columns).toPandas().to_csv(export / f"{name}.csv", index=False)  # bounded: a benchmark table
    scores = score(train, synthetic, s.continuous, s.categorical)
    fidelity = assess(train, synthetic, s.continuous, s.categorical, s.constraints,
                      {name: r.where for name, r in s.quality.rare_shares.items()})
    return {"column_shapes": scores.column_shapes, "pair_trends": scores.pair_trends,
            "pair_trends_sdmetrics": scores.pair_trends_sdmetrics, **fidelity.summary(),
            "fidelity": json.loads(json.dumps(fidelity.__dict__))}


def gan_runs(lake_root: str, runs: int) -> dict[str, dict]:
    """The scores each of the last `runs` synthesize runs saved with its model."""
    from recsynth.train.artifacts import file_reader

    folder = Path(lake_root.removeprefix("file:")) / "models" / "gan"
    found = {}
    for run in sorted(p.name for p in folder.iterdir())[-runs:]:
        meta = json.loads(file_reader(str(folder / run))("meta.json"))
        found[run] = {**meta["scores"], "fidelity": meta.get("fidelity"), "epochs": len(meta["history"]),
                      "best_epoch": meta.get("best_epoch"), "gates_failed": meta["gates_failed"]}
    return found


def ratio(pair) -> str:
    real, synthetic = pair
    return f"{synthetic / real:.2f}×" if real else "–"


def markdown(results: dict, rare: list[str]) -> str:
    head = ["generator", "epochs (best)", "shapes", "pair trends", "SDMetrics pair trends", "identities",
            "range cov.", "category cov.", *rare]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        f = r["fidelity"] or {}
        epochs = f"{r['epochs']} ({r['best_epoch']})" if r.get("epochs") else "–"
        lines.append("| " + " | ".join([
            name, epochs, f"{r['column_shapes']:.3f}", f"{r['pair_trends']:.3f}",
            "–" if r.get("pair_trends_sdmetrics") is None or math.isnan(r["pair_trends_sdmetrics"]) else f"{r['pair_trends_sdmetrics']:.3f}",
            f"{r['constraint_validity']:.2%}", f"{r['range_coverage']:.3f}", f"{r['category_coverage']:.3f}",
            *[ratio(f.get("rare_shares", {}).get(k, (0, 0))) for k in rare]]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = conf_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3, help="the last N synthesize runs to show (default 3)")
    parser.add_argument("--export", type=Path, help="also write train, marginals and recsynth rows as CSV here")
    args = parser.parse_args()

    from recsynth.session import get_spark

    conf = load(args)
    spark = get_spark(conf)
    if args.export:
        args.export.mkdir(parents=True, exist_ok=True)
    results = {**gan_runs(conf.lake.root, args.runs), "independent marginals": marginals_scores(spark, conf, args.export)}
    rare = list(conf.synth.quality.rare_shares)
    table = markdown(results, rare)
    print(f"{os.cpu_count()} cores, {platform.node()}; {TARGETS}\n\n{table}")
    out = ROOT / "benchmarks" / "results" / f"synth_fidelity_{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # ignored by git: absent from a fresh clone
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
