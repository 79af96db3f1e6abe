"""The end-of-pipeline summary: what ran, what was written, what was rejected, what to try next."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from rich.table import Table

from recsynth import tables as T


def print_summary(console, lake, records, seconds: float) -> None:
    runs = Table("job", "status", "rows in", "rows out", "note", title="Jobs")
    for r in records:
        runs.add_row(r.job, r.status, str(r.rows_in), str(r.rows_out), r.message)
    console.print(runs)

    written = Table("table", "version", "rows", title="Tables")
    for record in records:
        for name, version in record.output_versions.items():
            if version is not None:
                written.add_row(lake.qualified(name), str(version), str(lake.read(name).count()))
    console.print(written)

    if lake.exists(T.SILVER_QUARANTINE):
        counts = quarantine_counts(lake.read(T.SILVER_QUARANTINE)).collect()
        console.print(quarantine_table(counts, "Quarantined rows by reason (silver.quarantine)"))

    if lake.exists(T.SYNTHETIC_QUALITY):
        latest = lake.read(T.SYNTHETIC_QUALITY).orderBy(F.desc("measured_at")).head()
        console.print(
            f"Synthetic data (model {latest['model_version']}): quality {latest['quality_overall']:.3f}, "
            f"ML efficacy AUC ratio {latest['efficacy_auc_ratio']:.2f}, DCR ratio {latest['dcr_ratio']:.2f}, "
            f"membership AUC {latest['membership_auc']:.2f}. Report: {latest['report_uri']}")

    if lake.exists(T.RECS_METRICS):
        print_recs_metrics(console, lake)

    console.print(f"Finished in {seconds:.0f} s. Warehouse: [bold]{lake.root}[/]")
    console.print('Try: recsynth sql "SELECT top_category, count(*) AS sessions, avg(n_events) FROM gold.behavior GROUP BY 1 ORDER BY 2 DESC"')


def quarantine_counts(quarantine: DataFrame, *keys: str) -> DataFrame:
    """Rejected rows per source, entity and reason (and any extra `keys`), largest first per entity:
    a handful of rows whatever the data's size, so callers may collect it."""
    return (quarantine.groupBy(*keys, "source", "entity", "reason").agg(F.count(F.lit(1)).alias("rows"))
            .orderBy("source", "entity", F.desc("rows"), "reason"))


def quarantine_table(counts, title: str) -> Table:
    """The rows of `quarantine_counts` as a table (the summary and `recsynth status` show the same)."""
    table = Table("source", "entity", "reason", "rows", title=title)
    for row in counts:
        table.add_row(row["source"], row["entity"], row["reason"], str(row["rows"]))
    return table


def print_recs_metrics(console, lake) -> None:
    """The offline metrics of the newest recommend run, one row per model (from recs.metrics)."""
    metrics = lake.read(T.RECS_METRICS)
    latest = metrics.orderBy(F.desc("measured_at")).select("run_id").head()
    if latest is None:
        return
    rows = metrics.where(F.col("run_id") == latest["run_id"]).orderBy("model").collect()
    first = rows[0]
    table = Table("model", f"precision@{first['k']}", f"recall@{first['k']}", f"NDCG@{first['k']}", f"MAP@{first['k']}",
                  "hit rate", "coverage", "novelty", "users",
                  title=f"Recommenders on the {first['evaluation_split']} period (model {first['model_version']}, "
                        f"gold.splits v{first['training_data_version']}; recs.metrics)")

    def number(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for row in rows:
        table.add_row(row["model"], *[number(row[c]) for c in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
                                                               "hit_rate_at_k", "catalogue_coverage", "novelty")],
                      str(row["users"]))
    console.print(table)
    console.print(f"Try: recsynth sql \"SELECT rank, item_id, score FROM recs.top_n WHERE model_version = "
                  f"'{first['model_version']}' AND user_id = (SELECT min(user_id) FROM recs.top_n) ORDER BY rank\"")
