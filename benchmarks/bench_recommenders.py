"""Recommender quality against the baselines a shop already has, on both tasks, with intervals.

Runs `recsynth recommend` (forced) on a lake whose gold tables exist, then reads that run's rows of
recs.metrics and prints, per task and source, every model's NDCG@K with its bootstrap 95% interval
over users, and the issue's two targets: the served model against `recent` on `next` and against
`ease` on `discovery` (a ratio of means; the intervals say how far apart they can be). The served
model was chosen on validation; these are test figures, which choose nothing.

    # the bundled sample: gold built by `recsynth pipeline` (or ingest, clean, gold) in ./warehouse
    .venv/bin/python benchmarks/bench_recommenders.py
    # another lake, e.g. the whole Online Retail beside the samples
    .venv/bin/python benchmarks/bench_recommenders.py --set lake.root=/tmp/or/lake \\
        --set lake.metastore_dir=/tmp/or/metastore --set sources.online_retail.enabled=true
Prints a markdown table and writes benchmarks/results/recommenders_<run id>.json.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from conf_options import conf_parser, load

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = conf_parser(__doc__)
    args = parser.parse_args()

    from rich.console import Console

    from recsynth import logs
    from recsynth import tables as T
    from recsynth.lake import Lake
    from recsynth.pipeline import JOBS
    from recsynth.runtime.runs import run_job
    from recsynth.session import get_spark

    conf = load(args)
    logs.configure(conf, Console(stderr=True))  # the job's progress lines on the console, as `recsynth` shows them
    try:
        spark = get_spark(conf)
        lake = Lake(spark, conf)
        started = time.monotonic()
        record = run_job(JOBS["recommend"], spark, conf, lake, force=True)
        seconds = time.monotonic() - started
    finally:
        logs.reset()  # stdout back from the log file, for the table
    if record.status != "succeeded":
        raise SystemExit(f"recommend {record.status}: {record.message}")
    rows = [r.asDict() for r in lake.read(T.RECS_METRICS).where(f"run_id = '{record.run_id}'").collect()]
    test = [r for r in rows if r["evaluation_split"] == conf.recs.evaluation_split]
    served = next(r["model"] for r in test if r["served"])
    k = conf.recs.k

    def row(model, task, source="all"):
        return next((r for r in test if (r["model"], r["task"], r["source"]) == (model, task, source)), None)

    lines = [f"recommend {record.run_id}: {seconds:.0f} s, k={k}, served {served} (chosen on "
             f"{conf.recs.validation_split or 'nothing: pinned'}), {os.cpu_count()} cores, {platform.node()}", ""]
    for task in ("next", "discovery"):
        sources = sorted({r["source"] for r in test if r["task"] == task}, key=lambda s: (s == "all", s))
        lines += [f"**{task}**: NDCG@{k} [95% interval] (users)", "",
                  "| model | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
        for model in sorted({r["model"] for r in test}):
            cells = []
            for source in sources:
                r = row(model, task, source)
                cells.append("–" if r is None or r["ndcg_at_k"] is None else
                             f"{r['ndcg_at_k']:.4f} [{r['ndcg_at_k_low']:.4f}, {r['ndcg_at_k_high']:.4f}] ({r['users']})")
            lines.append(f"| {model}{' (served)' if model == served else ''} | " + " | ".join(cells) + " |")
        lines.append("")
    targets = {}
    for task, baseline in (("next", "recent"), ("discovery", "ease")):
        ours, theirs = row(served, task), row(baseline, task)
        ratio = ours["ndcg_at_k"] / theirs["ndcg_at_k"] if theirs and theirs["ndcg_at_k"] else None
        targets[task] = {"served": served, "baseline": baseline, "ratio": ratio, "target": 1.1}
        lines.append(f"target {task}: {served} / {baseline} = {'n/a' if ratio is None else f'{ratio:.2f}'} "
                     f"(target >= 1.10)")
    print("\n".join(lines))
    out = ROOT / "benchmarks" / "results" / f"recommenders_{record.run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # ignored by git: absent from a fresh clone
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run_id": record.run_id, "seconds": seconds, "overrides": args.overrides,
                               "targets": targets, "rows": rows}, default=str, indent=1))


if __name__ == "__main__":
    main()
