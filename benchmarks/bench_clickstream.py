"""Can the synthetic clickstream stand in for the real one? The issue's targets, measured.

Runs `recsynth synthesize-events` and `recsynth evaluate-synthetic` (both forced) on a lake whose
gold tables exist, then reads those runs' rows of synthetic.events_quality and synthetic.utility
and prints them beside the targets:
- TSTR: NDCG@K of each item-side model trained on synthetic events only, tested on real users,
  as a ratio to the same model trained on real events; the target is >= 0.7x for the best
  real-trained baseline on `discovery`;
- item popularity (Gini, on as many synthetic people as real ones) and mean events per session
  within 10% of real; the funnel (carts per
  view, purchases per cart) within 20% of real where a source has views and carts;
- user-level membership AUC <= 0.55; distinctive paths of training people found no more often
  than the holdout's.
A failing privacy gate fails the first job: nothing is published, and the figures it measured
are in the log file.

    .venv/bin/python benchmarks/bench_clickstream.py --set lake.root=/tmp/pipe/lake --set lake.metastore_dir=/tmp/pipe/metastore
Prints a markdown summary and writes benchmarks/results/clickstream_<run id>.json.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from conf_options import conf_parser, load

ROOT = Path(__file__).resolve().parents[1]


def _within(synthetic: float | None, real: float | None, tolerance: float) -> str:
    if synthetic is None or not real:
        return "n/a"
    ratio = synthetic / real
    return f"{ratio:.2f}x ({'met' if abs(ratio - 1) <= tolerance else 'missed'}, within {tolerance:.0%})"


def _real_side(quality: dict, key: str) -> str:
    """The ratio's interval from the real rate's own interval over people (`funnel_intervals`): how
    far a second draw of as many real people could stand from this one."""
    low, high = ((quality.get(f"real_funnel_{end}") or {}).get(key) for end in ("low", "high"))
    synthetic = quality["synthetic_funnel"].get(key)
    if not (low and high and synthetic):
        return ""
    return f"; [{synthetic / high:.2f}, {synthetic / low:.2f}] over the real people (real {low:.4f}-{high:.4f})"


def pooled_rows(utility: list[dict]):
    """A lookup of synthetic.utility's pooled rows by (model, trained_on, task); None where absent."""
    def pooled(model: str, trained_on: str, task: str) -> dict | None:
        return next((r for r in utility if (r["model"], r["trained_on"], r["task"], r["source"])
                     == (model, trained_on, task, "all")), None)
    return pooled


def tstr_ratio(row: dict) -> str:
    """A synthetic.utility row's ratio to real, with its paired 95% interval where it has one."""
    interval = (f" [{row['ratio_to_real_low']:.2f}, {row['ratio_to_real_high']:.2f}]"
                if row.get("ratio_to_real_low") is not None else "")
    return f"{row['ratio_to_real']:.2f}x{interval}"


def utility_table(utility: list[dict], models: list[str], k: int) -> list[str]:
    """Markdown rows: per task and model, NDCG@k [95% interval] trained on real, synthetic only and
    both, the latter two with their ratio to real [paired 95% interval]."""
    pooled = pooled_rows(utility)
    lines = [f"| model | task | NDCG@{k} real | synthetic only (TSTR) | real + synthetic |", "|---|---|---|---|---|"]
    for task in ("next", "discovery"):
        for model in models:
            cells = []
            for trained_on in ("real", "synthetic", "real+synthetic"):
                r = pooled(model, trained_on, task)
                if r is None or r["ndcg_at_k"] is None:
                    cells.append("–")
                    continue
                ratio = "" if trained_on == "real" or r["ratio_to_real"] is None else f" = {tstr_ratio(r)}"
                cells.append(f"{r['ndcg_at_k']:.4f} [{r['ndcg_at_k_low']:.4f}, {r['ndcg_at_k_high']:.4f}]{ratio}")
            lines.append(f"| {model} | {task} | " + " | ".join(cells) + " |")
    return lines


def best_tstr(utility: list[dict], models: list[str]) -> tuple[str, str]:
    """The issue's yardstick: the best real-trained model on `discovery`, and its TSTR ratio
    [paired 95% interval] against the 0.7x target."""
    pooled = pooled_rows(utility)
    best = max(models, key=lambda m: (pooled(m, "real", "discovery") or {}).get("ndcg_at_k") or 0)
    row = pooled(best, "synthetic", "discovery")
    if row is None or row["ratio_to_real"] is None:
        return best, "n/a"
    return best, f"{tstr_ratio(row)} ({'met' if row['ratio_to_real'] >= 0.7 else 'missed'}, >= 0.7x)"


def main() -> None:
    parser = conf_parser(__doc__)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="keep the published synthetic.events (and its quality row); run evaluate-synthetic only")
    args = parser.parse_args()

    from rich.console import Console

    from recsynth import logs
    from recsynth import tables as T
    from recsynth.lake import Lake
    from recsynth.pipeline import JOBS
    from recsynth.runtime.runs import run_job
    from recsynth.session import get_spark

    conf = load(args)
    logs.configure(conf, Console(stderr=True))
    seconds = {}
    try:
        spark = get_spark(conf)
        lake = Lake(spark, conf)
        records = {}
        for name in ("evaluate_synthetic",) if args.evaluate_only else ("synthesize_events", "evaluate_synthetic"):
            started = time.monotonic()
            records[name] = run_job(JOBS[name], spark, conf, lake, force=True)
            seconds[name] = time.monotonic() - started
    finally:
        logs.reset()
    evaluated = records["evaluate_synthetic"]
    published = lake.read(T.SYNTHETIC_EVENTS).select("model_version").head()["model_version"]
    quality = lake.read(T.SYNTHETIC_EVENTS_QUALITY).where(f"model_version = '{published}'").head().asDict()
    generated_seconds = f"{seconds['synthesize_events']:.0f} s" if "synthesize_events" in seconds else "an earlier run"
    utility = [r.asDict() for r in lake.read(T.SYNTHETIC_UTILITY).where(f"run_id = '{evaluated.run_id}'").collect()]
    lines = [f"synthesize-events {quality['run_id']} ({generated_seconds}), evaluate-synthetic "
             f"{evaluated.run_id} ({seconds['evaluate_synthetic']:.0f} s); {os.cpu_count()} cores, {platform.node()}", "",
             f"people: {quality['training_people']} training, {quality['holdout_people']} holdout, "
             f"{quality['synthetic_people']} synthetic ({quality['synthetic_events']} events)", "",
             *utility_table(utility, conf.clickstream.tstr_models, conf.recs.k)]
    best, tstr = best_tstr(utility, conf.clickstream.tstr_models)
    funnel = {key: _within(quality["synthetic_funnel"].get(key), value, 0.2) + _real_side(quality, key)
              for key, value in quality["real_funnel"].items()}
    targets = {
        f"TSTR, best real-trained baseline on discovery ({best})": tstr,
        "item Gini, at the same number of people": f"{quality['synthetic_item_gini']:.3f} vs {quality['real_item_gini']:.3f}: "
                     + _within(quality["synthetic_item_gini"], quality["real_item_gini"], 0.1),
        "events per session": f"{quality['synthetic_mean_session_events']:.2f} vs "
                              f"{quality['real_mean_session_events']:.2f}: "
                              + _within(quality["synthetic_mean_session_events"], quality["real_mean_session_events"], 0.1)
                              + f"; KS {quality['session_events_ks']:.3f}",
        **{f"funnel {key}": value for key, value in funnel.items()},
        "membership AUC": f"{quality['membership_auc']:.3f} ({'met' if quality['membership_auc'] <= 0.55 else 'missed'},"
                          " <= 0.55)",
        "sessions with their planned top category / purchase / cart / number of purchases / of carts (no target)":
            " / ".join("n/a" if quality.get(f"planned_{kind}_share") is None else f"{quality[f'planned_{kind}_share']:.3f}"
                       for kind in ("category", "purchase", "cart", "purchase_count", "cart_count")),
        **{f"moves from one item to the next {what}, synthetic / a holdout person's (no target)": " / ".join(
            "n/a" if quality.get(f"{side}_{kind}_move_share") is None else f"{quality[f'{side}_{kind}_move_share']:.3f}"
            for side in ("synthetic", "holdout"))
           for kind, what in (("common", "that min_people training people took"), ("repeat", "to the same item"))},
        "distinctive paths found, training / holdout": ", ".join(
            f"{n}: {quality['train_ngram_share'][n]:.4f} / {quality['holdout_ngram_share'][n]:.4f}"
            for n in sorted(quality["train_ngram_share"])),
    }
    lines += ["", *[f"- {name}: {value}" for name, value in targets.items()]]
    print("\n".join(lines))
    out = ROOT / "benchmarks" / "results" / f"clickstream_{evaluated.run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # ignored by git: absent from a fresh clone
    out.write_text(json.dumps({"runs": {n: r.run_id for n, r in records.items()}, "seconds": seconds,
                               "overrides": args.overrides, "quality": quality, "utility": utility, "targets": targets},
                              default=str, indent=1))


if __name__ == "__main__":
    main()
