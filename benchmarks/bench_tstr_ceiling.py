"""How high can TSTR go on this lake? The ceiling a perfect generator would reach.

A generator learns from the training people only (the holdout is its privacy yardstick), and
writes only items that at least `clickstream.min_people` of them touched. So even a generator
that copied its training data perfectly would not score 1.0x. This benchmark measures that
ceiling: it publishes the training people's own fit-period events as synthetic.events (with
`--items shared`, only their events on the items a generator may write), runs
`recsynth evaluate-synthetic` on them, prints the TSTR table and restores synthetic.events to the
version it found. The copy is never a product output: it would fail every privacy gate.
With `--people sessions`, each copied session is its own person: what the ceiling is without the
links between one person's sessions (how much of TSTR a generator can owe to them).

    .venv/bin/python benchmarks/bench_tstr_ceiling.py --items shared --set lake.root=/tmp/pipe/lake --set lake.metastore_dir=/tmp/pipe/metastore
Prints a markdown summary and writes benchmarks/results/tstr_ceiling_<run id>.json.
"""
from __future__ import annotations

import json
import os
import platform
import time

from bench_clickstream import ROOT, best_tstr, utility_table
from conf_options import conf_parser, load


def main() -> None:
    parser = conf_parser(__doc__)
    parser.add_argument("--items", choices=("all", "shared"), default="shared",
                        help="all: every event of the training people; shared (default): only those on items at "
                             "least clickstream.min_people training people touched, as a generator writes")
    parser.add_argument("--people", choices=("kept", "sessions"), default="kept",
                        help="kept (default): the training people as they are; sessions: each session its own "
                             "person, so no item-side model sees two sessions of one person together")
    args = parser.parse_args()

    from pyspark.sql import functions as F
    from rich.console import Console

    from recsynth import logs
    from recsynth import tables as T
    from recsynth.lake import Lake
    from recsynth.pipeline import JOBS
    from recsynth.runtime.runs import run_job
    from recsynth.session import get_spark
    from recsynth.synth.clickstream import shared_items
    from recsynth.synth.privacy import split_by_person

    conf = load(args)
    logs.configure(conf, Console(stderr=True))
    try:
        spark = get_spark(conf)
        lake = Lake(spark, conf)
        data_version = lake.version(T.GOLD_SPLITS)
        fit = lake.read(T.GOLD_SPLITS, version=data_version).where(F.col("split").isin(*conf.recs.fit_splits))
        copy, _ = split_by_person(fit, conf.clickstream.holdout_fraction)
        if args.items == "shared":
            copy = copy.join(shared_items(copy, conf.clickstream.min_people).select("source", "item_id"),
                             ["source", "item_id"], "left_semi")
        if args.people == "sessions":
            copy = copy.withColumn("user_id", F.concat_ws(":", "user_id", "session_id"))
        stamped = copy.withColumn("model_version", F.lit(f"ceiling-{args.items}-{args.people}")).withColumn(
            "training_data_version", F.lit(data_version))
        found = lake.version(T.SYNTHETIC_EVENTS)
        lake.overwrite(T.SYNTHETIC_EVENTS, stamped.select(*[
            (F.col(name) if name in stamped.columns else F.lit(None)).cast(kind).alias(name)
            for name, kind in T.schema_columns(T.schema(T.SYNTHETIC_EVENTS))]))
        try:
            started = time.monotonic()
            evaluated = run_job(JOBS["evaluate_synthetic"], spark, conf, lake, force=True)
            seconds = time.monotonic() - started
        finally:
            if found is not None:
                lake.restore(T.SYNTHETIC_EVENTS, found)
        utility = [r.asDict() for r in lake.read(T.SYNTHETIC_UTILITY).where(f"run_id = '{evaluated.run_id}'").collect()]
    finally:
        logs.reset()
    best, tstr = best_tstr(utility, conf.clickstream.tstr_models)
    lines = [f"ceiling ({args.items} items, people {args.people}): evaluate-synthetic {evaluated.run_id} ({seconds:.0f} s); "
             f"{os.cpu_count()} cores, {platform.node()}", "",
             *utility_table(utility, conf.clickstream.tstr_models, conf.recs.k), "",
             f"- TSTR ceiling, best real-trained baseline on discovery ({best}): {tstr}"]
    print("\n".join(lines))
    out = ROOT / "benchmarks" / "results" / f"tstr_ceiling_{evaluated.run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # ignored by git: absent from a fresh clone
    out.write_text(json.dumps({"run": evaluated.run_id, "items": args.items, "people": args.people, "seconds": seconds,
                               "overrides": args.overrides, "utility": utility}, default=str, indent=1))


if __name__ == "__main__":
    main()
