"""How the synthesize job's distributed parts scale, on a generated table with the columns of
gold.behavior (conf synth.continuous and synth.categorical: 10 continuous, 5 categorical).

The table is generated with Spark built-ins (spark.range + seeded rand/randn expressions), shaped
like a session table: three hidden activity segments, count columns that add up
(n_events >= n_views + n_carts + n_purchases), prices only for one source (nulls for the other),
spend only on purchases, a long-tailed top_category (more values than synth.max_categories, so
the rare ones fold into __other__), start hour and day of week. Training, holdout and
"synthetic" rows are independent draws (seeds 1, 2, 3) of n, n/5 and n rows, written as Parquet
under the scratch folder before anything is timed.

Measured, at each size n of --sizes, in one Spark session (local[2], like conf/local.yaml):

- fit: transformer.fit with the conf (stratified sample of synth.fit_sample_rows rows), and on
  the whole table (sample_rows=None);
- privacy.assess(train, holdout, synthetic, fitted) with synth.privacy.query_rows;
- sampling.synthesize with an untrained generator (generator_weights=None), n rows, written as
  Parquet (rows/s include the write);
- training (--train-sizes only): the encoded table written to a Delta table (at least 4 files),
  then run_on_ranks(spark, train_rank, num_proc) for 1 and 2 ranks, 2 epochs, conf synth.gan.
  "train s" is the sum of rank 0's epoch seconds (progress.json next to its checkpoint); the wall
  time of run_on_ranks also includes Spark/Horovod/Gloo start-up, TensorFlow import, the shard
  read, model build and tracing.
- peer (unless --skip-peer), after every Spark measurement: the same privacy statistics computed
  the single-machine way: every row of train, holdout and synthetic collected to the driver with
  toPandas (Arrow on), features in numpy in the same space as privacy.features, exact copies by
  row hashes, exact nearest neighbours (numpy, blocked) for the same number of sampled queries
  against all distinct reference rows, AUC by ranks. Run only when a memory estimate (a formula,
  or a line through the two largest peer runs so far) fits in half the machine's RAM and in what
  is available now, less 2 GiB.

Peak memory is sampled every 0.1 s: the Python driver alone, and the whole process tree (driver,
Spark JVM, Python workers, Horovod ranks).

    .venv/bin/python benchmarks/bench_synth_scale.py --sizes 10000 --train-sizes 10000
    .venv/bin/python benchmarks/bench_synth_scale.py      # 10^4, 10^5, 10^6
Prints a markdown table and writes benchmarks/results/synth_scale_<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
GIB = 2 ** 30
log = logging.getLogger("bench_synth_scale")


# --- measuring ---------------------------------------------------------------------------------
class PeakMemory:
    """Largest resident set of this process (the driver) and of its whole tree, sampled."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.driver = self.tree = self.start = 0

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            own, total = 0, 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                if proc.pid == me.pid:
                    own = rss
            self.driver, self.tree = max(self.driver, own), max(self.tree, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        gc.collect()
        self.start = psutil.Process().memory_info().rss
        self.driver = self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(label: str, action):
    """(result, record) with seconds and peak memory of `action()`."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
    record = {"seconds": round(seconds, 2), "driver_rss_start_gib": round(memory.start / GIB, 3),
              "driver_peak_gib": round(memory.driver / GIB, 3), "tree_peak_gib": round(memory.tree / GIB, 3)}
    log.info("%s: %.1f s, driver peak %.2f GiB (start %.2f), all processes %.2f GiB", label, seconds,
             memory.driver / GIB, memory.start / GIB, memory.tree / GIB)
    return result, record


# --- data --------------------------------------------------------------------------------------
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def behaviour_like(spark, n: int, seed: int, partitions: int):
    """n session rows with gold.behavior's synth columns (and types), from Spark built-ins only."""
    from pyspark.sql import functions as F

    def u(k):  # uniform [0, 1); the same k gives the same value on a row
        return F.rand(seed * 1000 + k)

    def z(k):
        return F.randn(seed * 1000 + k)

    segment = F.when(u(2) < 0.6, 0).when(u(2) < 0.9, 1).otherwise(2)
    step1 = spark.range(n, numPartitions=partitions).select(
        F.when(u(1) < 0.7, "retailrocket").otherwise("rees46").alias("source"),
        segment.alias("_segment"),
        F.floor(u(12) * 24).cast("int").alias("start_hour"),
        F.element_at(F.array(*[F.lit(d) for d in DAYS]), (F.floor(u(13) * 7) + 1).cast("int")).alias("day_of_week"),
        F.when(u(15) < 0.1, "unknown").otherwise(F.concat(F.lit("c"), F.floor(F.pow(u(14), 3) * 300).cast("string")))
        .alias("top_category"),
        u(3).alias("_u3"), u(5).alias("_u5"), u(6).alias("_u6"), u(7).alias("_u7"), u(8).alias("_u8"),
        u(10).alias("_u10"), z(4).alias("_z4"), z(9).alias("_z9"), z(11).alias("_z11"),
    )
    purchased = F.col("_u3") < F.when(F.col("_segment") == 2, 0.6).otherwise(0.05)
    step2 = step1.select(
        "*", purchased.alias("purchased"),
        F.greatest(F.lit(1.0), F.round(F.exp(F.element_at(F.array(F.lit(0.7), F.lit(1.8), F.lit(2.5)),
                                                           F.col("_segment") + 1) + 0.6 * F.col("_z4")))).alias("_events"),
    ).withColumn("n_purchases", F.when(F.col("purchased"), 1 + F.floor(F.col("_u5") * 2)).otherwise(0).cast("long"))
    step3 = step2.withColumn("n_carts", (F.col("n_purchases") + F.floor(F.col("_u6") * 2)).cast("long")) \
        .withColumn("n_events", F.greatest(F.col("_events"), F.col("n_carts") + F.col("n_purchases")).cast("long"))
    rees = F.col("source") == "rees46"
    mean_price = F.when(rees, F.round(F.exp(3.5 + F.col("_z9")), 2))
    step4 = step3.select(
        "*",
        (F.col("n_events") - F.col("n_carts") - F.col("n_purchases")).alias("n_views"),
        F.greatest(F.lit(1), F.round(F.col("n_events") * (0.4 + 0.6 * F.col("_u7")))).cast("long").alias("n_items"),
        mean_price.alias("mean_price"),
        F.when(F.col("n_events") == 1, 0.0)
        .otherwise(F.round((F.col("n_events") - 1) * F.exp(3.0 + 0.8 * F.col("_z11")))).alias("duration_s"),
    )
    step5 = step4.select(
        "*",
        F.least(F.col("n_items"), 1 + F.floor(F.pow(F.col("_u8"), 2) * 4)).cast("long").alias("n_categories"),
        F.when(F.col("n_items") > 1, F.round(F.col("mean_price") * (1 + 0.5 * F.col("_u10")), 2))
        .otherwise(F.col("mean_price")).alias("max_price"),
        F.when(F.col("purchased") & rees, F.round(F.col("mean_price") * F.col("n_purchases"), 2)).otherwise(0.0).alias("spend"),
    )
    return step5


def write_data(spark, work: Path, n: int, columns: list[str]) -> dict[str, str]:
    """train (n), holdout (n/5), synthetic (n): independent draws, Parquet."""
    paths = {}
    for name, rows, seed in (("train", n, 1), ("holdout", max(1, n // 5), 2), ("synthetic", n, 3)):
        path = work / "data" / str(n) / name
        if not (path / "_SUCCESS").exists():
            partitions = max(2, math.ceil(rows / 250_000))
            behaviour_like(spark, rows, seed, partitions).select(*columns).write.mode("overwrite").parquet(str(path))
        paths[name] = str(path)
    return paths


# --- the single-process peer -------------------------------------------------------------------
REFERENCE_BLOCK = 10_000   # reference rows per distance block
QUERY_BLOCK = 1024         # 1024 x 10,000 float64 distances = 80 MB (and a few temporaries of that size)


def numpy_features(frame, fitted):
    """(features float64, row hash) in the space of privacy.features, from a pandas frame."""
    import pandas as pd

    out = np.zeros((len(frame), 2 * len(fitted.continuous) + sum(c.width for c in fitted.categorical)))
    position, key_parts = 0, {}
    for c in fitted.continuous:
        mean = sum(w * m for w, m in zip(c.weights, c.means))
        variance = sum(w * (s * s + m * m) for w, m, s in zip(c.weights, c.means, c.stds)) - mean * mean
        scale = math.sqrt(max(variance, 1e-12))
        x = frame[c.name].to_numpy(dtype=float)
        null = np.isnan(x)
        out[:, position], out[:, position + 1] = np.where(null, 0.0, (x - mean) / scale), null
        position += 2
        key_parts[c.name] = np.round(x, 6)
    for c in fitted.categorical:
        column = frame[c.name]
        if column.dtype == bool:
            text = column.map({True: "true", False: "false"}).to_numpy(dtype=object)
        else:
            text = column.astype(object).where(column.notna(), None).map(lambda v: None if v is None else str(v)).to_numpy(dtype=object)
        known = {v for v in c.values if v != "__other__"}
        folded = np.array([v if v in known else "__other__" for v in text], dtype=object)
        for v in c.values:
            out[:, position] = (folded == v) * math.sqrt(0.5)
            position += 1
        key_parts[c.name] = text
    keys = pd.util.hash_pandas_object(pd.DataFrame(key_parts), index=False).to_numpy()
    return out, keys


def nearest(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Exact distance of each query row to its closest reference row (blocked both ways)."""
    best = np.full(len(queries), np.inf)
    query_norms = (queries ** 2).sum(axis=1)
    for r0 in range(0, len(reference), REFERENCE_BLOCK):
        ref = reference[r0:r0 + REFERENCE_BLOCK]
        ref_norms = (ref ** 2).sum(axis=1)
        for q0 in range(0, len(queries), QUERY_BLOCK):
            block = queries[q0:q0 + QUERY_BLOCK]
            squared = query_norms[q0:q0 + QUERY_BLOCK, None] + ref_norms[None, :] - 2.0 * block @ ref.T
            np.minimum(best[q0:q0 + QUERY_BLOCK], squared.min(axis=1), out=best[q0:q0 + QUERY_BLOCK])
    return np.sqrt(np.maximum(best, 0.0))


def auc(members: np.ndarray, others: np.ndarray) -> float:
    """Area under the ROC curve of `members` scored above `others` (ties count half)."""
    import pandas as pd

    ranks = pd.Series(np.concatenate([members, others])).rank(method="average").to_numpy()
    return float((ranks[:len(members)].sum() - len(members) * (len(members) + 1) / 2) / (len(members) * len(others)))


def peer_assess(spark, paths: dict[str, str], columns: list[str], fitted, query_rows: int, seed: int) -> tuple[dict, dict]:
    """Exact copies, median DCRs and membership AUC, single process on the driver; (report, seconds)."""
    seconds = {}
    started = time.perf_counter()
    frames = {name: spark.read.parquet(path).select(*columns).toPandas() for name, path in paths.items()}
    seconds["collect"] = time.perf_counter() - started
    started = time.perf_counter()
    feats = {name: numpy_features(frame, fitted) for name, frame in frames.items()}
    del frames
    train_keys = set(feats["train"][1].tolist())
    copy = {name: float(np.fromiter((k in train_keys for k in feats[name][1].tolist()), bool).mean())
            for name in ("synthetic", "holdout")}

    def distinct(name):
        _, first = np.unique(feats[name][1], return_index=True)
        return feats[name][0][np.sort(first)]

    distinct_train, distinct_synthetic = distinct("train"), distinct("synthetic")
    rng = np.random.default_rng(seed)
    queries = {name: feats[name][0][rng.choice(len(feats[name][0]), min(query_rows, len(feats[name][0])), replace=False)]
               for name in feats}
    seconds["features"] = time.perf_counter() - started
    started = time.perf_counter()
    median_s = float(np.median(nearest(queries["synthetic"], distinct_train)))
    median_h = float(np.median(nearest(queries["holdout"], distinct_train)))
    member_auc = auc(-nearest(queries["train"], distinct_synthetic), -nearest(queries["holdout"], distinct_synthetic))
    seconds["nearest"] = time.perf_counter() - started
    report = {"exact_copy_share": copy["synthetic"], "holdout_copy_share": copy["holdout"], "median_dcr_synthetic": median_s,
              "median_dcr_holdout": median_h, "dcr_ratio": median_s / median_h if median_h else float("nan"),
              "membership_auc": member_auc}
    return report, {k: round(v, 2) for k, v in seconds.items()}


def peer_memory_estimate(n: int, width: int, measured: list[tuple[int, float]]) -> float:
    """Driver bytes the peer is expected to need at n training rows (2.2 n rows collected): the
    larger of a formula (the float64 features, about 1 kB a row for the pandas frame and row hashes,
    the distance blocks, 1 GiB for the interpreter and libraries) and a straight line through the
    two largest runs so far (rows, peak driver bytes)."""
    rows = n + n // 5 + n
    formula = rows * (width * 8 + 1000) + QUERY_BLOCK * REFERENCE_BLOCK * 8 * 4 + GIB
    if len(measured) < 2:
        return formula
    (rows_a, peak_a), (rows_b, peak_b) = sorted(measured)[-2:]
    slope = max(0.0, (peak_b - peak_a) / max(rows_b - rows_a, 1))
    return max(formula, peak_b + slope * (rows - rows_b))


# --- the run -----------------------------------------------------------------------------------
def machine() -> dict:
    def shell(command):
        try:
            return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001 - description only
            return ""
    cpu = next((line.split(":", 1)[1].strip() for line in shell("lscpu").splitlines() if line.startswith("Model name")), "")
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
            "free_g": shell("free -g"), "platform": platform.platform(), "python": platform.python_version(),
            "load_at_start": os.getloadavg()}


def parse_scale_arguments(parser: argparse.ArgumentParser, argv, name: str) -> argparse.Namespace:
    """The options every scale benchmark shares: scratch folder, driver memory, JSON out, --report."""
    parser.add_argument("--work", type=Path, default=Path(f"/tmp/recsynth-bench-{name.replace('_', '-')}"),
                        help="scratch folder (emptied)")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / f"{name}_{dt.date.today():%Y-%m-%d}.json")
    parser.add_argument("--report", type=Path, help="only print the table of an earlier run's JSON")
    return parser.parse_args(argv)


def print_report(path: Path, markdown) -> dict:
    result = json.loads(path.read_text())
    print(markdown(result))
    return result


def quiet_logging(*noisy: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in noisy:
        logging.getLogger(name).setLevel(logging.WARNING)


def fresh_scratch_conf(args: argparse.Namespace):
    """An emptied --work folder and the conf of a lake inside it (one Spark session, 8 partitions)."""
    from recsynth.config import load_conf

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    return load_conf("local", [
        f"lake.root={args.work}/lake", f"lake.metastore_dir={args.work}/metastore", f"spark.delta_jars_dir={ROOT}/.cache/jars",
        f"spark.driver_memory={args.driver_memory}", "spark.shuffle_partitions=8", "ops.log_level=WARNING",
        "spark.extra={spark.ui.enabled: 'false', spark.ui.showConsoleProgress: 'false'}",
    ], ROOT / "conf")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="training rows, comma-separated")
    parser.add_argument("--train-sizes", default="100000",
                        help="sizes (also in --sizes) at which GAN training is measured; '' for none")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--skip-peer", action="store_true", help="do not run the single-process numpy peer")
    parser.add_argument("--skip-whole-fit", action="store_true", help="fit only with the conf's sample")
    args = parse_scale_arguments(parser, argv, "synth_scale")
    if args.report:
        return print_report(args.report, markdown)
    quiet_logging("py4j", "recsynth", "horovod")
    sizes = sorted({int(s) for s in args.sizes.split(",") if s})
    train_sizes = [s for s in sorted({int(s) for s in args.train_sizes.split(",") if s}) if s in sizes]

    from recsynth import tables as T
    from recsynth.lake import Lake
    from recsynth.session import get_spark
    from recsynth.synth.gan import GanParams, params_dict, train_rank
    from recsynth.synth.privacy import assess
    from recsynth.synth.sampling import synthesize
    from recsynth.synth.transformer import encode, fit
    from recsynth.train import progress
    from recsynth.train.launcher import run_on_ranks
    from recsynth.train.shards import check_shardable, current_files

    conf = fresh_scratch_conf(args)
    synth = conf.synth
    columns = [*synth.continuous, *synth.categorical]
    spark = get_spark(conf)
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")  # toPandas for the peer
    lake = Lake(spark, conf)
    spark.range(1000).selectExpr("sum(id)").collect()  # warm the JVM
    gan = GanParams(**{**synth.gan.model_dump(), "epochs": args.epochs}, seed=synth.seed)
    result = {"date": dt.date.today().isoformat(), "machine": machine(), "spark": spark.version,
              "master": conf.spark.master, "driver_memory": args.driver_memory, "columns": columns,
              "gan": params_dict(gan), "query_rows": synth.privacy.query_rows, "sizes": {}}

    fit_kwargs = dict(max_categories=synth.max_categories, max_modes=synth.max_modes, em_iterations=synth.em_iterations,
                      mode_weight_threshold=synth.mode_weight_threshold, stratum=synth.stratify_by, seed=synth.seed)
    # warm the Python workers (pandas, pyarrow imports) before the first measured pandas function
    fit(behaviour_like(spark, 2000, 9, 2), synth.continuous, synth.categorical, sample_rows=None,
        **{**fit_kwargs, "em_iterations": 1})
    fitted_of, paths_of = {}, {}
    for n in sizes:
        record = result["sizes"][str(n)] = {"train_rows": n, "holdout_rows": n // 5, "synthetic_rows": n}
        paths, record["generate"] = measure(f"[{n}] generate + write train/holdout/synthetic",
                                            lambda: write_data(spark, args.work, n, columns))
        paths_of[n] = paths
        train = spark.read.parquet(paths["train"])
        holdout, synthetic = spark.read.parquet(paths["holdout"]), spark.read.parquet(paths["synthetic"])

        fitted, record["fit_sample"] = measure(f"[{n}] transformer.fit (sample of {synth.fit_sample_rows})", lambda: fit(
            train, synth.continuous, synth.categorical, sample_rows=synth.fit_sample_rows, **fit_kwargs))
        record["fit_sample"]["sample_rows"] = synth.fit_sample_rows
        record["transformer_width"] = fitted.width
        record["modes"] = {c.name: len(c.means) for c in fitted.continuous}
        if not args.skip_whole_fit:
            _, record["fit_whole"] = measure(f"[{n}] transformer.fit (whole table)", lambda: fit(
                train, synth.continuous, synth.categorical, sample_rows=None, **fit_kwargs))
        fitted_of[n] = fitted

        report, record["assess"] = measure(f"[{n}] privacy.assess", lambda: assess(
            train, holdout, synthetic, synthetic, fitted, min_copy_support=synth.privacy.min_copy_support,
            query_rows=synth.privacy.query_rows, seed=synth.seed))
        record["assess"]["report"] = report.__dict__

        sample_path = args.work / "sampled" / str(n)

        def sample():
            synthesize(spark, None, fitted, gan, n, synth.sample_partitions, synth.seed) \
                .write.mode("overwrite").parquet(str(sample_path))
        _, record["sampling"] = measure(f"[{n}] sampling.synthesize (untrained) -> Parquet", sample)
        record["sampling"]["rows_written"] = spark.read.parquet(str(sample_path)).count()
        record["sampling"]["partitions"] = synth.sample_partitions
        record["sampling"]["rows_per_s"] = round(n / record["sampling"]["seconds"])

        if n in train_sizes:
            ranks_max = 2
            encoded = encode(train, fitted).repartition(max(4, 2 * ranks_max))
            _, record["encode"] = measure(f"[{n}] encode -> Delta", lambda: lake.overwrite(T.SYNTHETIC_ENCODED, encoded))
            files = current_files(lake.read(T.SYNTHETIC_ENCODED))
            check_shardable(files, ranks_max, T.SYNTHETIC_ENCODED)
            record["encode"]["files"] = len(files)
            record["training"] = {}
            for num_proc in (1, 2):
                checkpoint = f"{args.work}/checkpoints/{n}-{num_proc}"
                kwargs = {"files": files, "transformer_json": fitted.to_json(), "params": params_dict(gan),
                          "checkpoint_uri": checkpoint, "checkpoint_every": 10_000}  # one save, after the last epoch
                results, run = measure(f"[{n}] run_on_ranks(train_rank, num_proc={num_proc})",
                                       lambda: run_on_ranks(spark, train_rank, num_proc, kwargs=kwargs))
                chief = next(r for r in results if r["rank"] == 0)
                epochs = progress.read(checkpoint)
                train_s = sum(e["seconds"] for e in epochs)
                rows = sum(r["rows"] for r in results)
                run.update({"rows": rows, "epochs": len(epochs), "epoch_seconds": [round(e["seconds"], 2) for e in epochs],
                            "train_seconds": round(train_s, 2), "startup_seconds": round(run["seconds"] - train_s, 2),
                            "rows_per_s_train": round(rows * len(epochs) / train_s) if train_s else None,
                            "rows_per_s_wall": round(rows * len(epochs) / run["seconds"]),
                            "steps_per_epoch_per_rank": max(1, min(r["rows"] for r in results) // gan.batch_size),
                            "history": chief["history"]})
                record["training"][str(num_proc)] = run
        save(args.out, result)
        gc.collect()

    if not args.skip_peer:
        measured = []
        half_ram = psutil.virtual_memory().total / 2
        for n in sizes:
            record = result["sizes"][str(n)]
            need = peer_memory_estimate(n, fitted_of[n].width, measured)
            available = psutil.virtual_memory().available
            if need > half_ram or need > available - 2 * GIB:
                record["peer"] = {"skipped": f"not run: needs {need / GIB:.1f} GiB (half the RAM: {half_ram / GIB:.1f} GiB, "
                                             f"available now: {available / GIB:.1f} GiB)"}
                log.info("[%d] peer %s", n, record["peer"]["skipped"])
                continue
            (report, parts), peer = measure(f"[{n}] peer: toPandas + numpy exact NN on the driver", lambda: peer_assess(
                spark, paths_of[n], columns, fitted_of[n], synth.privacy.query_rows, synth.seed))
            peer.update({"parts": parts, "report": report, "estimate_gib": round(need / GIB, 2)})
            record["peer"] = peer
            peer["agrees_with_assess"] = {key: round(report[key] - record["assess"]["report"][key], 4)
                                          for key in ("exact_copy_share", "holdout_copy_share", "dcr_ratio", "membership_auc")}
            measured.append((n + n // 5 + n, peer["driver_peak_gib"] * GIB))
            save(args.out, result)
            gc.collect()
    spark.stop()

    result["complete"] = True
    save(args.out, result)
    print(markdown(result))
    print(f"\nwritten: {args.out}")
    return result


def save(path: Path, result: dict) -> None:
    """Write the results so far (a run cut short keeps what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))


def markdown(result: dict) -> str:
    def gib(record):
        return f"{record['driver_peak_gib']:.2f} / {record['tree_peak_gib']:.2f}"

    lines = ["| step | training rows | seconds | rows/s | peak RSS GiB (driver / all) | notes |", "|---|---|---|---|---|---|"]
    for n, r in result["sizes"].items():
        rows = f"{int(n):,}"
        if "sampling" not in r:  # a run cut short
            continue
        lines.append(f"| transformer.fit (conf: sample {r['fit_sample']['sample_rows']:,}) | {rows} | {r['fit_sample']['seconds']:.1f} "
                     f"| {int(n) / r['fit_sample']['seconds']:,.0f} | {gib(r['fit_sample'])} | width {r['transformer_width']} |")
        if "fit_whole" in r:
            lines.append(f"| transformer.fit (whole table) | {rows} | {r['fit_whole']['seconds']:.1f} "
                         f"| {int(n) / r['fit_whole']['seconds']:,.0f} | {gib(r['fit_whole'])} | |")
        a = r["assess"]
        lines.append(f"| privacy.assess (Spark) | {rows} | {a['seconds']:.1f} | {int(n) / a['seconds']:,.0f} | {gib(a)} "
                     f"| DCR ratio {a['report']['dcr_ratio']:.3f}, AUC {a['report']['membership_auc']:.3f} |")
        p = r.get("peer")
        if p and "skipped" in p:
            lines.append(f"| peer: toPandas + numpy NN on driver | {rows} | – | – | – | {p['skipped']} |")
        elif p:
            parts = p["parts"]
            lines.append(f"| peer: toPandas + numpy NN on driver | {rows} | {p['seconds']:.1f} | {int(n) / p['seconds']:,.0f} "
                         f"| {gib(p)} | collect {parts['collect']:.1f} s, features {parts['features']:.1f} s, NN {parts['nearest']:.1f} s; "
                         f"DCR ratio {p['report']['dcr_ratio']:.3f}, AUC {p['report']['membership_auc']:.3f} |")
        s = r["sampling"]
        lines.append(f"| sampling.synthesize → Parquet ({s['partitions']} partitions) | {rows} (sampled) | {s['seconds']:.1f} "
                     f"| {s['rows_per_s']:,} | {gib(s)} | untrained generator |")
        for num_proc, t in r.get("training", {}).items():
            lines.append(f"| GAN training, {num_proc} rank(s), {t['epochs']} epochs | {t['rows']:,} | {t['train_seconds']:.1f} train "
                         f"(+{t['startup_seconds']:.1f} start-up) | {t['rows_per_s_train']:,} ({t['rows_per_s_wall']:,} on wall) "
                         f"| {gib(t)} | {t['steps_per_epoch_per_rank']} steps/epoch/rank, epochs {t['epoch_seconds']} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
