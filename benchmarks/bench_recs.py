"""All-user top-N at scale: recsynth's top_n against Spark ALS recommendForAllUsers, on the same
ALS factors, in the same Spark session.

Data: implicit interactions generated with Spark built-ins (spark.range + seeded rand), written
as Parquet before anything is timed. n users in --groups planted groups (user i is in group
i mod groups); each user has 1 + floor(Exp(mean 4)) interactions (capped at 30); each
interaction is, with probability 0.7, an item of the user's group (the group owns
items/groups consecutive items, Zipf-like within them: floor(width * u^3)) and otherwise an item
of the whole catalogue with a long head (floor(items * u^4)); weight 1..3. String ids
("u123", "i45"), like gold.

At each size n of --sizes:

- fit: `recsynth.rec.baselines.fit_als` (implicit ALS, --rank, --max-iter), then the model is
  saved (ALSModel.write) and its factors exported with string ids (AlsFit.user_factors /
  item_factors) as Parquet. Reported as fit seconds; not part of users/s.
- then, on the same factors read back from Parquet (ALSModel.load for ALS; the exported
  (user_id, vector) / (item_id, vector) for recsynth), each into the same sink
  (`.write.format("noop")`, which computes every row and writes nothing):
  * recsynth top_n(users, items, exclusions=every (user, item) of the interactions, k) -
    what the recommend job does (it excludes purchased items);
  * recsynth top_n(users, items, exclusions=None, k) - like for like with ALS;
  * ALSModel.recommendForAllUsers(k) - cannot exclude anything; returns one row per user with
    an array of (int item index, rating), int ids, no string ids.
  users/s = n / seconds.
- agreement (sizes <= 10^5): on 2,000 sampled users, the share of ALS's top-k (item, user)
  pairs that top_n without exclusions also returns (float32 rounding and ties aside, 1.0).

    .venv/bin/python benchmarks/bench_recs.py                      # 10^4, 10^5, 10^6 users
    .venv/bin/python benchmarks/bench_recs.py --sizes 10000       # quick check
Prints a markdown table and writes benchmarks/results/recs_scale_<date>.json (after every step,
so a run cut short keeps what it measured).
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_synth_scale import (  # noqa: E402  (same measuring as the other scale benchmark)
    fresh_scratch_conf, machine, measure, parse_scale_arguments, print_report, quiet_logging, save,
)

log = logging.getLogger("bench_recs")


def interactions(spark, n: int, items: int, groups: int, seed: int, partitions: int):
    """(user_id, item_id, weight) rows for n users; see the module docstring."""
    from pyspark.sql import functions as F

    width = items // groups
    users = spark.range(n, numPartitions=partitions).select(
        F.col("id").alias("_u"),
        F.least(F.lit(30), 1 + F.floor(-F.log(1 - F.rand(seed * 1000 + 1)) * 4)).cast("int").alias("_count"))
    rows = users.select("_u", F.explode(F.sequence(F.lit(1), F.col("_count"))).alias("_j"))
    in_group = F.rand(seed * 1000 + 2) < 0.7
    group_item = (F.col("_u") % groups) * width + F.floor(width * F.pow(F.rand(seed * 1000 + 3), 3))
    any_item = F.floor(items * F.pow(F.rand(seed * 1000 + 4), 4))
    return rows.select(
        F.concat(F.lit("u"), F.col("_u").cast("string")).alias("user_id"),
        F.concat(F.lit("i"), F.when(in_group, group_item).otherwise(any_item).cast("long").cast("string")).alias("item_id"),
        (1 + F.floor(F.rand(seed * 1000 + 5) * 3)).cast("double").alias("weight"))


def noop(frame) -> None:
    frame.write.format("noop").mode("overwrite").save()


def markdown(result: dict) -> str:
    lines = ["| users | interactions | items | ALS fit (+ save, export) | top_n, seen excluded | top_n, no exclusions "
             "| ALS recommendForAllUsers | agreement |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(record, key):
        r = record.get(key)
        return f"{r['seconds']:.1f} s ({r['users_per_s']:,} users/s)" if r else "–"
    for n, r in result["sizes"].items():
        fit = f"{r['fit']['seconds']:.1f} s (+ {r['export']['seconds']:.1f} s)" if "export" in r else "–"
        agreement = f"{r['agreement']:.4f}" if "agreement" in r else "–"
        lines.append(f"| {int(n):,} | {r.get('interactions', 0):,} | {r.get('items', 0):,} | {fit} | "
                     f"{cell(r, 'top_n_excluding_seen')} | {cell(r, 'top_n_no_exclusions')} | "
                     f"{cell(r, 'als_recommend_for_all_users')} | {agreement} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="users, comma-separated")
    parser.add_argument("--items", type=int, default=20_000, help="catalogue size")
    parser.add_argument("--groups", type=int, default=50, help="planted user/item groups")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--max-iter", type=int, default=5)
    args = parse_scale_arguments(parser, argv, "recs_scale")
    if args.report:
        return print_report(args.report, markdown)
    quiet_logging("py4j", "recsynth")
    sizes = sorted({int(s) for s in args.sizes.split(",") if s})

    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import functions as F

    from recsynth.rec.baselines import fit_als
    from recsynth.rec.topn import top_n
    from recsynth.session import get_spark

    conf = fresh_scratch_conf(args)
    spark = get_spark(conf)
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(args.work / "checkpoints"))
    started = time.perf_counter()
    result = {"date": dt.date.today().isoformat(), "started_utc": dt.datetime.utcnow().isoformat(timespec="seconds"),
              "machine": machine(), "spark": spark.version, "master": conf.spark.master,
              "driver_memory": args.driver_memory, "shuffle_partitions": 8, "k": args.k, "items": args.items,
              "groups": args.groups, "als": {"rank": args.rank, "max_iter": args.max_iter, "reg_param": 0.1, "alpha": 10.0},
              "sink": "noop", "sizes": {}}

    # warm the JVM, the Python workers (pandas/pyarrow for mapInPandas) and ALS's code paths
    warm = interactions(spark, 500, 200, 5, 9, 2)
    warm_fit = fit_als(warm, rank=4, max_iter=1)
    noop(top_n(warm_fit.user_factors, warm_fit.item_factors, warm.select("user_id", "item_id"), args.k))
    noop(warm_fit.model.recommendForAllUsers(args.k))

    for n in sizes:
        record = result["sizes"][str(n)] = {"users": n}
        data, model_path = args.work / "data" / str(n), args.work / "als" / str(n)
        users_path, items_path = args.work / "user_factors" / str(n), args.work / "item_factors" / str(n)
        partitions = max(2, math.ceil(n / 125_000))
        _, record["generate"] = measure(f"[{n}] generate -> Parquet", lambda: interactions(
            spark, n, args.items, args.groups, 1, partitions).write.mode("overwrite").parquet(str(data)))
        train = spark.read.parquet(str(data))
        record["interactions"] = train.count()
        record["distinct_pairs"] = train.select("user_id", "item_id").distinct().count()
        save(args.out, result)

        fit, record["fit"] = measure(f"[{n}] fit_als rank {args.rank}, {args.max_iter} iterations",
                                     lambda: fit_als(train, rank=args.rank, max_iter=args.max_iter))

        def export():
            fit.model.write().overwrite().save(str(model_path))
            fit.user_factors.repartition(8).write.mode("overwrite").parquet(str(users_path))
            fit.item_factors.write.mode("overwrite").parquet(str(items_path))
        _, record["export"] = measure(f"[{n}] save model, export factors", export)
        model = ALSModel.load(str(model_path))
        user_factors, item_factors = spark.read.parquet(str(users_path)), spark.read.parquet(str(items_path))
        record["items"] = item_factors.count()
        record["users_with_factors"] = user_factors.count()
        save(args.out, result)

        seen = train.select("user_id", "item_id")
        runs = {
            "top_n_excluding_seen": lambda: noop(top_n(user_factors, item_factors, seen, args.k)),
            "top_n_no_exclusions": lambda: noop(top_n(user_factors, item_factors, None, args.k)),
            "als_recommend_for_all_users": lambda: noop(model.recommendForAllUsers(args.k)),
        }
        for name, action in runs.items():
            load_before = os.getloadavg()
            _, record[name] = measure(f"[{n}] {name}", action)
            record[name].update({"users_per_s": round(n / record[name]["seconds"]), "load_before": load_before,
                                 "load_after": os.getloadavg()})
            log.info("[%d] %s: %s users/s", n, name, f"{record[name]['users_per_s']:,}")
            save(args.out, result)

        if n <= 100_000:  # both lists for a sample of users, mapped to string ids
            sample = user_factors.select("user_id").orderBy(F.rand(7)).limit(2000).cache()
            ours = top_n(user_factors.join(sample, "user_id", "left_semi"), item_factors, None, args.k).select("user_id", "item_id")
            theirs = (model.recommendForAllUsers(args.k).select("_user_idx", F.explode("recommendations").alias("r"))
                      .select("_user_idx", F.col("r._item_idx").alias("_item_idx"))
                      .join(fit.users, "_user_idx").join(fit.items, "_item_idx").select("user_id", "item_id")
                      .join(sample, "user_id", "left_semi"))
            total = theirs.count()
            record["agreement"] = round(theirs.join(ours, ["user_id", "item_id"]).count() / total, 4) if total else None
            record["agreement_pairs"] = total
            sample.unpersist()
        save(args.out, result)
        fit.model.userFactors.unpersist()
        spark.catalog.clearCache()

    result["machine"]["load_at_end"] = os.getloadavg()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["finished_utc"] = dt.datetime.utcnow().isoformat(timespec="seconds")
    save(args.out, result)
    print(markdown(result))
    spark.stop()
    return result


if __name__ == "__main__":
    main()
