"""Benchmark raw -> gold (ingest, clean, gold) against the floor measured in the same run.

The floor is what any Spark job pays to touch the data once: Spark reading the same raw CSV
files and writing them as plain Parquet. The pipeline is measured on
- generated Retailrocket-layout clickstream (benchmarks/generate_clickstream.py) whose dirt is
  known, so the run also checks that every planted bot, duplicate and malformed line was found:
      .venv/bin/python benchmarks/bench_raw_to_gold.py --events 1000000 --work /tmp/bench
- or the whole UCI Online Retail orders export (data/online_retail, the source
  sources.online_retail of conf/defaults.yaml), whose published totals the run checks (rows, lines
  on cancelled invoices, negative quantities, lines without a customer):
      .venv/bin/python benchmarks/bench_raw_to_gold.py --online-retail --work /tmp/bench
Prints one JSON document (also written to <work>/result-<events or online_retail>.json).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import generate_clickstream  # noqa: E402

from recsynth import tables as T  # noqa: E402
from recsynth.config import load_conf  # noqa: E402
from recsynth.lake import Lake  # noqa: E402
from recsynth.pipeline import ETL  # noqa: E402
from recsynth.runtime.runs import run_job  # noqa: E402
from recsynth.session import get_spark  # noqa: E402


class PeakMemory:
    """Samples the resident memory of this process and its children (the Spark JVM)."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._stop.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(label, action):
    with PeakMemory() as memory:
        started = time.perf_counter()
        action()
        seconds = time.perf_counter() - started
    logging.info("%s: %.1f s, peak %.2f GiB", label, seconds, memory.peak / 2**30)
    return seconds, memory.peak


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--events", type=int, help="raw events to generate")
    data.add_argument("--online-retail", action="store_true", help="the whole bundled UCI Online Retail instead")
    parser.add_argument("--files", type=int, default=8, help="raw files to split them into")
    parser.add_argument("--work", type=Path, default=Path("/tmp/recsynth-bench"), help="scratch folder (emptied)")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    common = [f"spark.delta_jars_dir={ROOT}/.cache/jars", f"spark.driver_memory={args.driver_memory}",
              f"spark.shuffle_partitions={args.shuffle_partitions}", "ops.log_level=WARNING"]
    if args.online_retail:
        work, raw_glob = args.work / "online_retail", str(ROOT / "data" / "online_retail" / "online_retail.csv.gz")
        shutil.rmtree(work, ignore_errors=True)
        sources = ["sources.retailrocket.enabled=false", "sources.rees46.enabled=false", "sources.online_retail.enabled=true"]
    else:
        work = args.work / f"{args.events}"
        shutil.rmtree(work, ignore_errors=True)
        raw = work / "raw"
        raw_glob = f"{raw}/events-*.csv"
        started = time.perf_counter()
        generate_clickstream.main(["--events", str(args.events), "--out", str(raw), "--files", str(args.files), "--quiet"])
        manifest = json.loads((raw / "GENERATED.json").read_text())
        logging.info("generated %d events in %.0f s", args.events, time.perf_counter() - started)
        sources = ["sources.rees46.enabled=false", f"sources.retailrocket.events.path={raw_glob}",
                   f"sources.retailrocket.category_tree.path={ROOT}/data/sample/retailrocket/category_tree.csv"]
    conf = load_conf("local", [f"lake.root={work}/lake", f"lake.metastore_dir={work}/metastore", *common, *sources],
                     ROOT / "conf")
    spark = get_spark(conf)
    lake = Lake(spark, conf)
    spark.range(1000).selectExpr("sum(id)").collect()  # warm the JVM before either measurement

    def floor():
        spark.read.option("header", "true").csv(raw_glob).write.mode("overwrite").parquet(str(work / "floor"))

    def pipeline():
        for job in ETL:
            run_job(job, spark, conf, lake)

    floor_s, floor_peak = timed("floor (CSV -> Parquet)", floor)
    pipeline_s, pipeline_peak = timed("recsynth raw -> gold", pipeline)

    outcomes = {f"{r['entity']}/{r['metric']}/{r['reason'] or '-'}": r["rows"]
                for r in lake.read(T.OPS_DATA_QUALITY).collect()}
    rows = spark.read.option("header", "true").csv(raw_glob).count()
    result = {
        "data": "UCI Online Retail (data/online_retail)" if args.online_retail else f"generated clickstream, {args.events} events",
        "raw_rows": rows,
        "raw_bytes": sum(p.stat().st_size for p in Path(raw_glob).parent.glob(Path(raw_glob).name)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Spark {spark.version} local[2]",
        "floor_seconds": round(floor_s, 1),
        "pipeline_seconds": round(pipeline_s, 1),
        "job_seconds": {r["job"]: round((r["ended_at"] - r["started_at"]).total_seconds(), 1)
                        for r in lake.read(T.OPS_JOB_RUNS).collect()},
        "rows_per_second": round(rows / pipeline_s),
        "floor_rows_per_second": round(rows / floor_s),
        "ratio_to_floor": round(pipeline_s / floor_s, 2),
        "peak_rss_gib": round(pipeline_peak / 2**30, 2),
        "floor_peak_rss_gib": round(floor_peak / 2**30, 2),
        "silver_events": lake.read(T.SILVER_EVENTS).count(),
        "outcomes": outcomes,
    }
    if args.online_retail:
        result["published_totals"] = online_retail_totals(lake)
    else:
        result["found"] = {key.split("/")[2]: n for key, n in outcomes.items() if key.startswith("events/") and
                           key.split("/")[1] in ("quarantined", "duplicate")}
        result["planted"] = manifest["counts"].get("expected_reasons_recsynth_defaults") or manifest.get("expected_reasons_recsynth_defaults")
    spark.stop()
    print(json.dumps(result, indent=2))
    (args.work / f"result-{'online_retail' if args.online_retail else args.events}.json").write_text(json.dumps(result, indent=2))
    return result


def online_retail_totals(lake) -> dict:
    """The data set's published totals, recounted from where its lines ended: events accepted
    (silver.events), returned (silver.returns) or quarantined (their raw line): each must match."""
    from pyspark.sql import functions as F

    quarantined = lake.read(T.SILVER_QUARANTINE).where("entity = 'events'").select(
        F.get_json_object("raw", "$.InvoiceNo").alias("invoice"),
        F.get_json_object("raw", "$.Quantity").cast("int").alias("quantity"),
        F.get_json_object("raw", "$.CustomerID").alias("customer"))
    returns, events = lake.read(T.SILVER_RETURNS), lake.read(T.SILVER_EVENTS)
    duplicates = lake.read(T.OPS_DATA_QUALITY).where("entity = 'events' AND metric = 'duplicate'").agg(F.sum("rows")).head()[0] or 0
    counted = {
        "rows": events.count() + returns.count() + quarantined.count() + duplicates,
        # every line of a C invoice is a return, unless an earlier reason took it (no customer, not a product)
        "lines_on_C_invoices": returns.count() + quarantined.where(F.col("invoice").startswith("C")).count()
        + events.where(F.col("transaction_id").startswith("C")).count(),
        "negative_quantity": returns.count() + quarantined.where("quantity < 0").count(),
        "without_customer": quarantined.where(F.col("customer").isNull()).count(),
    }
    published = {"rows": 541909, "lines_on_C_invoices": 9288, "negative_quantity": 10624, "without_customer": 135080}
    return {name: {"counted": counted[name], "published": published[name]} for name in published}


if __name__ == "__main__":
    main()
