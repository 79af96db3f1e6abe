"""Benchmark synthetic behaviour data: recsynth's GAN against two baselines, on the same
training rows of gold.behavior (split into training and holdout sessions as the job does).

- recsynth: the job's own steps (transformer fit with Spark, encode, CTGAN-style WGAN-GP on
  `synth.num_proc` Horovod ranks over Petastorm shards, sampling on executors);
- independent marginals (lib/recsynth/synth/baselines.py): every column drawn on its own from
  its real marginal: the shapes a generator should reach, with no relation between columns;
- ctgan 0.12.1 (PyTorch), in its own venv (.cache/bench-ctgan-venv, created here from
  benchmarks/requirements-ctgan.txt), on a Parquet export of the same training rows, with the
  same epochs, batch size 500, pac 10 and network sizes as recsynth's conf.

Each is scored the same way: fit seconds, sampling rows/s (rows written as Parquet), column
shapes and column pair trends (lib/recsynth/synth/metrics.py on the whole tables, as SDMetrics
defines them; benchmarks/sdmetrics_score.py has SDMetrics' own figures), privacy
(lib/recsynth/synth/privacy.assess against the holdout, in the space of recsynth's fitted
transformer).
The holdout's own scores are the yardstick: a perfect generator scores like unseen real rows.

    .venv/bin/python benchmarks/bench_synth.py                  # epochs from conf (synth.gan.epochs)
    .venv/bin/python benchmarks/bench_synth.py --epochs 2 --skip-ctgan
Prints a markdown table and writes benchmarks/results/synth_<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CTGAN_VENV = ROOT / ".cache" / "bench-ctgan-venv"
REQUIREMENTS = ROOT / "benchmarks" / "requirements-ctgan.txt"
log = logging.getLogger("bench_synth")


# --- ctgan, run inside its own venv (this function imports nothing from recsynth) --------------
def ctgan_sample(frame, spec: dict):
    """Fit ctgan on `frame` (pandas) and sample `spec["rows"]` rows: (synthetic frame, facts).

    ctgan refuses nulls in continuous columns, so each continuous column with nulls gets a
    discrete `<c>__null` flag and its nulls a stand-in (the median); sampled rows whose flag is
    set get their null back. That is how recsynth's transformer treats nulls too."""
    import torch
    from ctgan import CTGAN

    torch.set_num_threads(spec["threads"])
    continuous, categorical = spec["continuous"], spec["categorical"]
    all_null = [c for c in continuous if frame[c].isna().all()]
    flagged = [c for c in continuous if c not in all_null and frame[c].isna().any()]
    frame = frame.drop(columns=all_null)
    for c in flagged:
        frame[f"{c}__null"] = frame[c].isna()
        frame[c] = frame[c].fillna(frame[c].median())
    model = CTGAN(epochs=spec["epochs"], batch_size=spec["batch_size"], pac=spec["pac"], embedding_dim=spec["embedding_dim"],
                  generator_dim=tuple(spec["generator_dims"]), discriminator_dim=tuple(spec["discriminator_dims"]),
                  generator_lr=spec["learning_rate"], discriminator_lr=spec["learning_rate"], enable_gpu=False)
    model.set_random_state(spec["seed"])
    started = time.perf_counter()
    model.fit(frame, discrete_columns=[*categorical, *(f"{c}__null" for c in flagged)])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    synthetic = model.sample(spec["rows"])
    for c in flagged:
        synthetic.loc[synthetic[f"{c}__null"].astype(bool), c] = float("nan")
    for c in all_null:
        synthetic[c] = float("nan")
    return synthetic[[*continuous, *categorical]], {
        "fit_seconds": fit_seconds, "sample_seconds": time.perf_counter() - started, "rows": len(synthetic),
        "null_flagged": flagged, "all_null": all_null, "torch": torch.__version__, "threads": torch.get_num_threads()}


def ctgan_worker(spec: dict) -> None:
    """ctgan on the exported training rows (Parquet in, Parquet and facts out)."""
    import pandas as pd

    synthetic, facts = ctgan_sample(pd.read_parquet(spec["train"]), spec)
    synthetic.to_parquet(spec["out"], index=False)
    Path(spec["result"]).write_text(json.dumps(facts))


def ctgan_python() -> tuple[Path | None, str]:
    """The ctgan venv's interpreter, created or updated from requirements-ctgan.txt when needed;
    (None, why) when it cannot be installed."""
    python, marker = CTGAN_VENV / "bin" / "python", CTGAN_VENV / ".requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return python, "cached"
    free_gib = shutil.disk_usage(CTGAN_VENV.parent if CTGAN_VENV.parent.exists() else ROOT).free / 2**30
    if free_gib < 8:
        return None, f"only {free_gib:.1f} GiB free for the ctgan venv (torch from PyPI needs about 5 GiB)"
    log.info("installing ctgan into %s (%.0f GiB free; torch from PyPI is large)", CTGAN_VENV, free_gib)
    CTGAN_VENV.parent.mkdir(parents=True, exist_ok=True)
    for step in ([sys.executable, "-m", "venv", str(CTGAN_VENV)],
                 [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            return None, f"{' '.join(step[:4])} failed: {(done.stderr or done.stdout).strip()[-2000:]}"
    marker.write_text(wanted)
    return python, "installed"


# --- scores on bounded samples (numpy / pandas, the same for every generator) -----------------
def fidelity(real, synthetic, continuous: list[str], categorical: list[str]) -> dict:
    """lib/recsynth/synth/metrics.py on the whole tables: column shapes, pair trends as SDMetrics
    counts them (and over every pair), and the five weakest columns and pairs."""
    from recsynth.synth import metrics

    scores = metrics.score(real, synthetic, continuous, categorical)
    pairs = {"|".join(pair): value for pair, value in scores.pairs.items() if value is not None}
    return {"column_shapes": scores.column_shapes, "pair_trends": scores.pair_trends_sdmetrics,
            "pair_trends_every_pair": scores.pair_trends,
            "columns_worst": dict(sorted(scores.columns.items(), key=lambda kv: kv[1])[:5]),
            "pairs_worst": dict(sorted(pairs.items(), key=lambda kv: kv[1])[:5])}


# --- the generators --------------------------------------------------------------------------
def run_recsynth(spark, conf, train, rows: int, work: Path) -> tuple[dict, object]:
    from recsynth.synth.gan import GanParams, params_dict, train_rank
    from recsynth.synth.sampling import synthesize
    from recsynth.synth.schema import match_types
    from recsynth.synth.transformer import encode, fit
    from recsynth.train.launcher import run_on_ranks
    from recsynth.train.shards import check_shardable, current_files

    s = conf.synth
    started = time.perf_counter()
    fitted = fit(train, s.continuous, s.categorical, max_categories=s.max_categories, max_modes=s.max_modes,
                 em_iterations=s.em_iterations, mode_weight_threshold=s.mode_weight_threshold,
                 sample_rows=s.fit_sample_rows, stratum=s.stratify_by, seed=s.seed)
    transformer_s = time.perf_counter() - started
    encode(train, fitted, seed=s.seed).repartition(max(2 * s.num_proc, s.sample_partitions)).write.mode("overwrite").parquet(str(work / "encoded"))
    files = current_files(train.sparkSession.read.parquet(str(work / "encoded")))
    check_shardable(files, s.num_proc, "encoded training rows")
    encode_s = time.perf_counter() - started - transformer_s
    params = GanParams(**s.gan.model_dump(), seed=s.seed)
    results = run_on_ranks(spark, train_rank, s.num_proc,
                           kwargs={"files": files, "transformer_json": fitted.to_json(), "params": params_dict(params)})
    fit_s = time.perf_counter() - started
    chief = next(r for r in results if r["rank"] == 0)
    started = time.perf_counter()
    synthetic = match_types(synthesize(spark, chief["generator"], fitted, params, rows, s.sample_partitions, s.seed),
                            train.schema, [*s.continuous, *s.categorical])
    synthetic.select(*s.continuous, *s.categorical).write.mode("overwrite").parquet(str(work / "recsynth"))
    sample_s = time.perf_counter() - started
    return {"fit_seconds": fit_s, "sample_seconds": sample_s, "rows": rows, "path": str(work / "recsynth"),
            "fit_breakdown": {"transformer": transformer_s, "encode": encode_s, "train": fit_s - transformer_s - encode_s},
            "trained_rows": sum(r["rows"] for r in results), "final_losses": chief["history"][-1]}, fitted


def run_marginals(spark, conf, train, rows: int, work: Path) -> dict:
    from recsynth.synth.baselines import independent_marginals

    s = conf.synth
    started = time.perf_counter()
    synthetic = independent_marginals(spark, train, s.continuous, s.categorical, rows, s.sample_partitions, s.seed)
    fit_s = time.perf_counter() - started  # the marginals are fitted eagerly; sampling is lazy
    started = time.perf_counter()
    synthetic.select(*s.continuous, *s.categorical).write.mode("overwrite").parquet(str(work / "marginals"))
    return {"fit_seconds": fit_s, "sample_seconds": time.perf_counter() - started, "rows": rows, "path": str(work / "marginals")}


def run_ctgan(conf, train_path: Path, rows: int, work: Path, threads: int) -> dict:
    python, how = ctgan_python()
    if python is None:
        return {"skipped": f"ctgan could not be installed: {how}"}
    g, s = conf.synth.gan, conf.synth
    spec = {"train": str(train_path), "out": str(work / "ctgan.parquet"), "result": str(work / "ctgan.json"),
            "continuous": list(s.continuous), "categorical": list(s.categorical), "rows": rows, "epochs": g.epochs,
            "batch_size": 500, "pac": 10, "embedding_dim": g.embedding_dim, "generator_dims": list(g.generator_dims),
            "discriminator_dims": list(g.discriminator_dims), "learning_rate": g.learning_rate, "seed": s.seed,
            "threads": threads}
    (work / "ctgan-spec.json").write_text(json.dumps(spec))
    log.info("ctgan: %d epochs on %s (%s venv)", g.epochs, train_path, how)
    done = subprocess.run([str(python), __file__, "--ctgan-worker", str(work / "ctgan-spec.json")], capture_output=True, text=True)
    if done.returncode:
        return {"skipped": f"ctgan failed: {(done.stderr or done.stdout).strip()[-2000:]}"}
    return {**json.loads((work / "ctgan.json").read_text()), "path": spec["out"]}


# --- the run ---------------------------------------------------------------------------------
def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, help="GAN epochs for recsynth and ctgan (default: synth.gan.epochs)")
    parser.add_argument("--rows-multiplier", type=float, help="synthetic rows = training rows x this (default: synth.rows_multiplier)")
    parser.add_argument("--skip-ctgan", action="store_true", help="leave ctgan out (no separate venv, no PyTorch)")
    parser.add_argument("--env", default="local", help="conf environment (default: local)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="conf override, repeatable")
    parser.add_argument("--work", type=Path, default=Path("/tmp/recsynth-bench-synth"), help="scratch folder (emptied)")
    parser.add_argument("--resume", action="store_true",
                        help="keep --work and reuse what an interrupted run left there (generated rows, timings, scores)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="where the JSON goes")
    parser.add_argument("--ctgan-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ctgan_worker:
        ctgan_worker(json.loads(args.ctgan_worker.read_text()))
        return None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # Horovod's Spark threads close py4j connections noisily
    os.chdir(ROOT)  # the conf's relative paths (warehouse, .cache/jars) are taken from here

    import psutil
    from pyspark.sql import functions as F

    from recsynth import tables as T
    from recsynth.config import load_conf
    from recsynth.lake import Lake
    from recsynth.session import get_spark
    from recsynth.synth.privacy import assess
    from recsynth.synth.schema import match_types

    overrides = [*args.set, "lake.metastore_dir=null"]  # read by path: no Derby lock on the warehouse
    if args.epochs:
        overrides.append(f"synth.gan.epochs={args.epochs}")
    if args.rows_multiplier:
        overrides.append(f"synth.rows_multiplier={args.rows_multiplier}")
    conf = load_conf(args.env, overrides, ROOT / "conf")
    s = conf.synth
    columns = [*s.continuous, *s.categorical]
    work, state_file = args.work, args.work / "state.json"
    state = json.loads(state_file.read_text()) if args.resume and state_file.exists() else {}
    if not state:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    elif state.get("conf") != conf.model_dump_json():
        parser.error(f"--resume: {work} holds a run with another conf (epochs, multiplier or --set differ)")

    def save_state():  # after every slow step, so an interrupted run resumes there
        state_file.write_text(json.dumps({**state, "conf": conf.model_dump_json()}, default=str))

    load_at_start = os.getloadavg()  # other work on the machine slows every generator alike; say how much
    spark = get_spark(conf)
    lake = Lake(spark, conf)
    data_version = lake.version(T.GOLD_BEHAVIOR)
    behavior = lake.read(T.GOLD_BEHAVIOR, version=data_version)
    in_holdout = (F.abs(F.xxhash64(*behavior.columns)) % 1000) < int(s.holdout_fraction * 1000)  # as the job splits
    if not state:
        behavior.filter(~in_holdout).select(*columns).coalesce(1).write.parquet(str(work / "train.parquet"))
    train = spark.read.parquet(str(work / "train.parquet")).cache()
    holdout = behavior.filter(in_holdout).select(*columns).cache()
    training_rows, holdout_rows = train.count(), holdout.count()
    rows = max(1, int(training_rows * s.rows_multiplier))
    log.info("gold.behavior v%s: %d training rows, %d holdout rows, %d columns; %d synthetic rows each",
             data_version, training_rows, holdout_rows, len(columns), rows)

    from recsynth.synth.transformer import FittedTransformer

    state.setdefault("load_at_start", load_at_start)
    if state.setdefault("data_version", data_version) != data_version:
        parser.error(f"--resume: gold.behavior moved from version {state['data_version']} to {data_version}; run afresh")
    generators = state.setdefault("generators", {})
    if "recsynth GAN" not in generators:
        generators["recsynth GAN"], fitted = run_recsynth(spark, conf, train, rows, work)
        state["transformer"] = fitted.to_json()
        save_state()
    fitted = FittedTransformer.from_json(state["transformer"])
    if "independent marginals" not in generators:
        generators["independent marginals"] = run_marginals(spark, conf, train, rows, work)
        save_state()
    if "ctgan 0.12.1" not in generators:
        generators["ctgan 0.12.1"] = ({"skipped": "--skip-ctgan"} if args.skip_ctgan
                                      else run_ctgan(conf, next((work / "train.parquet").glob("part-*.parquet")), rows, work,
                                                     os.cpu_count() or 1))
        save_state()

    yardstick = fidelity(train, holdout, s.continuous, s.categorical)
    for name, result in generators.items():
        if "skipped" in result:
            log.warning("%s: %s", name, result["skipped"])
            continue
        if "privacy" in result:
            log.info("%s: scored by the interrupted run", name)
            continue
        log.info("%s: fitted in %.1f s, sampled in %.1f s; scoring", name, result["fit_seconds"], result["sample_seconds"])
        synthetic = match_types(spark.read.parquet(result["path"]), train.schema, columns).select(*columns).cache()
        result.update(fidelity(train, synthetic, s.continuous, s.categorical))
        started = time.perf_counter()
        result["privacy"] = assess(train, holdout, synthetic, synthetic, fitted, min_copy_support=s.privacy.min_copy_support,
                                   query_rows=s.privacy.query_rows, seed=s.seed).__dict__
        result["privacy_seconds"] = time.perf_counter() - started
        result["rows_per_second"] = result["rows"] / result["sample_seconds"]
        synthetic.unpersist()
        save_state()

    memory = psutil.virtual_memory().total / 2**30
    report = {
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_synth.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, no GPU used; Spark {spark.version} "
                   f"{conf.spark.master}, {s.num_proc} Horovod ranks",
        "load_average": {"start": state["load_at_start"], "end": os.getloadavg()},
        "resumed": bool(args.resume),
        "data": {"table": T.GOLD_BEHAVIOR, "version": data_version, "training_rows": training_rows,
                 "holdout_rows": holdout_rows, "columns": len(columns), "continuous": list(s.continuous),
                 "categorical": list(s.categorical), "synthetic_rows": rows},
        "gan": {**s.gan.model_dump(), "ctgan_batch_size": 500, "ctgan_pac": 10},
        "holdout_yardstick": yardstick,
        "generators": generators,
    }
    spark.stop()
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"synth_{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(markdown(report))
    print(f"\nwritten: {out}")
    return report


def markdown(report: dict) -> str:
    y = report["holdout_yardstick"]
    lines = ["| generator | fit s | sampling rows/s | column shapes | pair trends (SDMetrics' pairs / every pair) "
             "| exact copies (holdout's) | median DCR (holdout's) | DCR ratio | membership AUC |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| real holdout (yardstick) | – | – | {y['column_shapes']:.3f} | {y['pair_trends']:.3f} "
             f"/ {y['pair_trends_every_pair']:.3f} | – | – | 1 | 0.5 |"]
    for name, r in report["generators"].items():
        if "skipped" in r:
            lines.append(f"| {name} | {r['skipped'][:120]} | | | | | | | |")
            continue
        p = r["privacy"]
        lines.append(f"| {name} | {r['fit_seconds']:.1f} | {r['rows_per_second']:,.0f} | {r['column_shapes']:.3f} | "
                     f"{r['pair_trends']:.3f} / {r['pair_trends_every_pair']:.3f} | "
                     f"{p['exact_copy_share']:.4f} ({p['holdout_copy_share']:.4f}) | "
                     f"{p['median_dcr_synthetic']:.3f} ({p['median_dcr_holdout']:.3f}) | {p['dcr_ratio']:.2f} | "
                     f"{p['membership_auc']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
