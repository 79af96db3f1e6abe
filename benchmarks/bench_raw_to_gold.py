"""Benchmark raw -> gold (ingest, clean, gold) against the floor measured in the same run.

The floor is what any Spark job pays to touch the data once: Spark reading the same raw CSV
files and writing them as plain Parquet. The pipeline is measured on generated Retailrocket-
layout clickstream (benchmarks/generate_clickstream.py) whose dirt is known, so the run also
checks that every planted bot, duplicate and malformed line was found.

    .venv/bin/python benchmarks/bench_raw_to_gold.py --events 1000000 --work /tmp/bench
Prints one JSON document (also written to <work>/result-<events>.json).
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
from recsynth.ops.runs import run_job  # noqa: E402
from recsynth.pipeline import PIPELINE  # noqa: E402
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
    parser.add_argument("--events", type=int, required=True, help="raw events to generate")
    parser.add_argument("--files", type=int, default=8, help="raw files to split them into")
    parser.add_argument("--work", type=Path, default=Path("/tmp/recsynth-bench"), help="scratch folder (emptied)")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    work = args.work / f"{args.events}"
    shutil.rmtree(work, ignore_errors=True)
    raw = work / "raw"
    started = time.perf_counter()
    generate_clickstream.main(["--events", str(args.events), "--out", str(raw), "--files", str(args.files), "--quiet"])
    manifest = json.loads((raw / "GENERATED.json").read_text())
    logging.info("generated %d events in %.0f s", args.events, time.perf_counter() - started)

    conf = load_conf("local", [
        f"lake.root={work}/lake", f"lake.metastore_dir={work}/metastore", f"spark.delta_jars_dir={ROOT}/.cache/jars",
        f"spark.driver_memory={args.driver_memory}", f"spark.shuffle_partitions={args.shuffle_partitions}",
        "sources.rees46.enabled=false", f"sources.retailrocket.events.path={raw}/events-*.csv",
        f"sources.retailrocket.category_tree.path={ROOT}/data/sample/retailrocket/category_tree.csv",
        "ops.log_level=WARNING",
    ], ROOT / "conf")
    spark = get_spark(conf)
    lake = Lake(spark, conf)
    spark.range(1000).selectExpr("sum(id)").collect()  # warm the JVM before either measurement

    def floor():
        spark.read.option("header", "true").csv(f"{raw}/events-*.csv").write.mode("overwrite").parquet(str(work / "floor"))

    def pipeline():
        for job in PIPELINE:
            run_job(job, spark, conf, lake)

    floor_s, floor_peak = timed("floor (CSV -> Parquet)", floor)
    pipeline_s, pipeline_peak = timed("recsynth raw -> gold", pipeline)

    quarantine = {r["reason"]: r["count"] for r in lake.read(T.SILVER_QUARANTINE).groupBy("reason").count().collect()}
    removed = {r["reason"]: r["rows"] for r in lake.read(T.OPS_DATA_QUALITY).filter("metric = 'duplicate' AND entity = 'events'").collect()}
    result = {
        "events": args.events,
        "raw_bytes": sum(p.stat().st_size for p in raw.glob("events-*.csv")),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Spark {spark.version} local[2]",
        "floor_seconds": round(floor_s, 1),
        "pipeline_seconds": round(pipeline_s, 1),
        "events_per_second": round(args.events / pipeline_s),
        "floor_events_per_second": round(args.events / floor_s),
        "ratio_to_floor": round(pipeline_s / floor_s, 2),
        "peak_rss_gib": round(pipeline_peak / 2**30, 2),
        "floor_peak_rss_gib": round(floor_peak / 2**30, 2),
        "silver_events": lake.read(T.SILVER_EVENTS).count(),
        "found": {**quarantine, **removed},
        "planted": manifest["counts"].get("expected_reasons_recsynth_defaults") or manifest.get("expected_reasons_recsynth_defaults"),
    }
    spark.stop()
    print(json.dumps(result, indent=2))
    (args.work / f"result-{args.events}.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
