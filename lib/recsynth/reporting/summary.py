"""The end-of-pipeline summary: what ran, what was written, what was rejected, what to try next.

Every line starts with a box-drawing character (titled sections, then one line per pointer), so
the summary is told apart from any other output, and it reads whole at 80 columns: names are
never cut, and the pointers (paths, queries to try) are never broken into lines, so they copy
whole from any terminal."""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Column, Table
from rich.text import Text

from recsynth import tables as T

# Sections are compact tables without a border of their own: the section's panel draws it.
COMPACT = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "collapse_padding": True}
GOLD_QUERY = 'recsynth sql "SELECT top_category, count(*) AS sessions, avg(n_events) FROM gold.behavior GROUP BY 1 ORDER BY 2 DESC"'


def print_summary(console, lake, records, seconds: float, log_file: Path) -> None:
    """Read what the run wrote (a handful of rows per table) and print the summary to `console`."""
    console.print(jobs_section(records))
    written = [(lake.qualified(name), version, lake.read(name).count())
               for record in records for name, version in record.output_versions.items() if version is not None]
    if written:
        console.print(tables_section(written))
    if lake.exists(T.SILVER_QUARANTINE):
        counts = quarantine_counts(lake.read(T.SILVER_QUARANTINE)).collect()
        if counts:
            console.print(section("Quarantined rows by reason (silver.quarantine)", quarantine_table(counts, None, **COMPACT)))

    pointers = [f"Finished in {seconds:.0f} s. Warehouse: {lake.root}", f"Full log: {log_file}"]
    if lake.exists(T.SYNTHETIC_QUALITY):
        latest = lake.read(T.SYNTHETIC_QUALITY).orderBy(F.desc("measured_at")).head()
        console.print(synthetic_section(latest))
        pointers.append(f"Synthetic data report: {latest['report_uri']}")
    metrics = newest_metrics(lake) if lake.exists(T.RECS_METRICS) else []
    if metrics:
        console.print(recs_section(metrics))
        pointers.append(f"Try: recsynth sql \"SELECT rank, item_id, score FROM recs.top_n WHERE model_version = "
                        f"'{metrics[0]['model_version']}' AND user_id = (SELECT min(user_id) FROM recs.top_n) ORDER BY rank\"")
    pointers.append(f"Try: {GOLD_QUERY}")
    print_pointers(console, pointers)


def section(title: str, *parts) -> Panel:
    return Panel(Group(*parts), title=f"[bold]{title}[/]", title_align="left", box=box.ROUNDED, expand=False)


def print_pointers(console, pointers: list[str]) -> None:
    """One line each, however long (soft-wrapped by the terminal, so a path or query copies whole)."""
    for number, pointer in enumerate(pointers, start=1):
        console.print(Text(f"{'└' if number == len(pointers) else '├'}─ {pointer}"), soft_wrap=True)


def _name(header: str) -> Column:
    """A column of names: given its full width, never wrapped or cut (other columns give way)."""
    return Column(header, no_wrap=True)


def _number(header: str) -> Column:
    return Column(header, justify="right", no_wrap=True)


def jobs_section(records) -> Panel:
    """One line per job; its outcome message was logged as it ended (and is in ops.job_runs)."""
    runs = Table(_name("job"), _name("status"), _number("seconds"), _number("rows in"), _number("rows out"), **COMPACT)
    for r in records:
        runs.add_row(r.job, r.status, f"{r.seconds:.0f}", str(r.rows_in), str(r.rows_out))
    return section("Jobs", runs)


def tables_section(written: list[tuple[str, int, int]]) -> Panel:
    """(table, version, rows) of each table the run wrote, as rows in two columns of tables (read
    down, then across) so that a whole lake fits a short screen; versions are in ops.job_runs and
    `recsynth status`."""
    table = Table(_name("table"), _number("rows"), Column("", width=2), _name("table"), _number("rows"), **COMPACT)
    half = -(-len(written) // 2)
    for left, right in zip(written[:half], [*written[half:], None]):
        table.add_row(left[0], str(left[2]), "", *((right[0], str(right[2])) if right else ("", "")))
    return section("Tables written (rows)", table)


def quarantine_counts(quarantine: DataFrame, *keys: str) -> DataFrame:
    """Rejected rows per source, entity and reason (and any extra `keys`), largest first per entity:
    a handful of rows whatever the data's size, so callers may collect it."""
    return (quarantine.groupBy(*keys, "source", "entity", "reason").agg(F.count(F.lit(1)).alias("rows"))
            .orderBy("source", "entity", F.desc("rows"), "reason"))


def quarantine_table(counts, title: str | None, **style) -> Table:
    """The rows of `quarantine_counts` as a table (the summary and `recsynth status` show the same)."""
    table = Table(_name("source"), _name("entity"), _name("reason"), _number("rows"), title=title, **style)
    for row in counts:
        table.add_row(row["source"], row["entity"], row["reason"], str(row["rows"]))
    return table


def synthetic_section(latest) -> Panel:
    """The newest row of synthetic.quality."""
    scores = Table(_number("quality"), _number("ML efficacy AUC ratio"), _number("DCR ratio"), _number("membership AUC"),
                   **COMPACT)
    scores.add_row(f"{latest['quality_overall']:.3f}", f"{latest['efficacy_auc_ratio']:.2f}", f"{latest['dcr_ratio']:.2f}",
                   f"{latest['membership_auc']:.2f}")
    return section("Synthetic data (synthetic.quality)", Text(f"model {latest['model_version']}", style="dim"), scores)


def newest_metrics(lake) -> list:
    """The rows of recs.metrics of the newest recommend run, one per model."""
    metrics = lake.read(T.RECS_METRICS)
    latest = metrics.orderBy(F.desc("measured_at")).select("run_id").head()
    return [] if latest is None else metrics.where(F.col("run_id") == latest["run_id"]).orderBy("model").collect()


def recs_section(rows) -> Panel:
    """The offline metrics of one recommend run (`newest_metrics`), one row per model; short
    headers, so that the longest model name and every metric fit in 80 columns."""
    first, k = rows[0], rows[0]["k"]
    table = Table(_name("model"), *[_number(f"{h}@{k}") for h in ("P", "R", "NDCG", "MAP", "HR")],
                  _number("coverage"), _number("novelty"), **COMPACT)

    def number(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for row in rows:
        table.add_row(row["model"], *[number(row[c]) for c in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
                                                               "hit_rate_at_k", "catalogue_coverage", "novelty")])
    about = Text(f"model {first['model_version']} on gold.splits v{first['training_data_version']}; "
                 f"the same {first['users']} users for every model; P precision, R recall, HR hit rate", style="dim")
    return section(f"Recommenders on the {first['evaluation_split']} period (recs.metrics)", about, table)
