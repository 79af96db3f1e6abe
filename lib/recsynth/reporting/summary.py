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
    if lake.clickstream == "real" and lake.exists(T.SYNTHETIC_QUALITY):   # the GAN's: not of a synthetic clickstream
        latest = lake.read(T.SYNTHETIC_QUALITY).orderBy(F.desc("measured_at")).head()
        console.print(synthetic_section(latest))
        pointers.append(f"Synthetic data report: {latest['report_uri']}")
    metrics = newest_metrics(lake) if lake.exists(T.RECS_METRICS) else []
    if metrics:
        console.print(recs_section(metrics, lake.located))
    print_pointers(console, pointers + queries_to_try(lake.located, metrics[0]["model_version"] if metrics else None))


def queries_to_try(located, model_version: str | None) -> list[str]:
    """Queries on the tables the run wrote (`located`: `Lake.located`, so that a run on the
    synthetic clickstream points at synthetic_recs.* and synthetic_gold.*): the served model's
    list for one user, when a recommend run wrote one, and the sessions by top category."""
    top_n, behavior = located(T.RECS_TOP_N), located(T.GOLD_BEHAVIOR)
    served = [] if model_version is None else [
        f"Try: recsynth sql \"SELECT rank, item_id, score FROM {top_n} WHERE model_version = '{model_version}' "
        f"AND user_id = (SELECT min(user_id) FROM {top_n}) ORDER BY rank\""]
    return served + [f"Try: recsynth sql \"SELECT top_category, count(*) AS sessions, avg(n_events) FROM {behavior} "
                     f"GROUP BY 1 ORDER BY 2 DESC\""]


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
    """The pooled rows of recs.metrics of the newest recommend run on its evaluation period (the
    served model's period), one per model and task."""
    metrics = lake.read(T.RECS_METRICS)
    latest = metrics.orderBy(F.desc("measured_at")).select("run_id").head()
    if latest is None:
        return []
    run = metrics.where((F.col("run_id") == latest["run_id"]) & (F.col("source") == "all"))
    served = run.where("served").select("evaluation_split").head()
    split = served["evaluation_split"] if served else "test"
    return run.where(F.col("evaluation_split") == split).orderBy("model", "task").collect()


def recs_section(rows, located=lambda name: name) -> Panel:
    """The newest recommend run's NDCG on both tasks (`newest_metrics`), one line per model with
    its 95% interval; short headers, so that the longest model name fits in 80 columns (the
    other measures are in recs.metrics and notebook 03). `located` names the tables where the
    run's clickstream has them (`Lake.located`)."""
    first, k = rows[0], rows[0]["k"]
    by_model: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], {})[row["task"]] = row
    table = Table(_name("model"), _number(f"next@{k}"), _number("95% CI"), _number(f"discovery@{k}"),
                  _number("95% CI"), **COMPACT)

    def cells(row) -> list[str]:
        if row is None or row["ndcg_at_k"] is None:
            return ["n/a", ""]
        return [f"{row['ndcg_at_k']:.3f}", f"{row['ndcg_at_k_low']:.3f}-{row['ndcg_at_k_high']:.3f}"]

    for model, tasks in sorted(by_model.items()):
        served = any(r["served"] for r in tasks.values())
        table.add_row(f"{model} *" if served else model, *cells(tasks.get("next")), *cells(tasks.get("discovery")))
    users = {task: next(r["users"] for r in rows if r["task"] == task) for task in ("next", "discovery")
             if any(r["task"] == task for r in rows)}
    about = Text(f"model {first['model_version']} on {located(T.GOLD_SPLITS)} v{first['training_data_version']}, "
                 "all sources; "
                 f"NDCG with its 95% interval over users ({', '.join(f'{n} on {task}' for task, n in users.items())});"
                 f" discovery counts only items new to the user; * served (chosen on validation)", style="dim")
    return section(f"Recommenders on the {first['evaluation_split']} period ({located(T.RECS_METRICS)})", about, table)
