"""The `recsynth` command: one sub-command per job, `pipeline` for the whole chain, `sql`."""
from __future__ import annotations

import logging
import sys
import time

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from recsynth.config import ENV_VAR, ENVIRONMENTS, Conf, load_conf
from recsynth.errors import RecsynthError

console = Console(stderr=True)
out = Console()


class Context:
    """Conf is validated before Spark starts; the session is built on first use."""

    def __init__(self, conf: Conf):
        self.conf = conf
        self._spark = None
        self._lake = None

    @property
    def spark(self):
        if self._spark is None:
            from recsynth.session import get_spark

            self._spark = get_spark(self.conf)
        return self._spark

    @property
    def lake(self):
        if self._lake is None:
            from recsynth.lake import Lake

            self._lake = Lake(self.spark, self.conf)
        return self._lake


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--env", type=click.Choice(ENVIRONMENTS), envvar=ENV_VAR, default="local", show_default=True,
              help=f"Conf overlay to apply on conf/defaults.yaml (or set ${ENV_VAR}).")
@click.option("--conf-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding defaults.yaml and the overlays (default: ./conf, then the packaged copy).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one conf key, e.g. --set spark.shuffle_partitions=4 (repeatable).")
@click.pass_context
def cli(ctx, env, conf_dir, overrides):
    """recsynth: e-commerce clickstream + catalog -> Delta lake (bronze, silver, gold) -> synthetic data
    and recommendations.

    \b
    Typical use:
      recsynth pipeline                      # ingest -> clean -> gold -> synthesize -> recommend
      recsynth sample --rows 1000 --where purchased=true
      recsynth sql "SELECT * FROM ops.job_runs ORDER BY started_at DESC LIMIT 5"
    Jobs are idempotent: a re-run ingests no file twice and skips jobs whose inputs did not change.
    """
    conf = load_conf(env, overrides, conf_dir)
    logging.basicConfig(level=conf.ops.log_level, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False)])
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = Context(conf)


def _run(ctx_obj: Context, job_names, force: bool):
    from recsynth.ops.runs import run_job
    from recsynth.pipeline import JOBS

    records = []
    for name in job_names:
        records.append(run_job(JOBS[name], ctx_obj.spark, ctx_obj.conf, ctx_obj.lake, force=force))
    return records


def _job_command(name: str, help_text: str):
    @cli.command(name=name, help=help_text)
    @click.option("--force", is_flag=True, help="Run even if inputs and conf are unchanged since the last success.")
    @click.pass_obj
    def command(obj: Context, force: bool):
        record = _run(obj, [name], force)[0]
        out.print(f"{record.job}: [bold]{record.status}[/] (run {record.run_id}) {record.message}")

    return command


def _register_job_commands():
    from recsynth.pipeline import JOBS

    for job in JOBS.values():
        _job_command(job.name, f"Run the {job.name} job: {job.description}.")


@cli.command()
@click.option("--force", is_flag=True, help="Run every job even if its inputs are unchanged.")
@click.pass_obj
def pipeline(obj: Context, force: bool):
    """Run the whole chain (ingest -> clean -> gold -> synthesize -> recommend) with progress, then print a summary."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from recsynth.ops.runs import run_job
    from recsynth.ops.summary import print_summary
    from recsynth.pipeline import PIPELINE

    started = time.monotonic()
    records = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
        overall = progress.add_task("pipeline", total=len(PIPELINE))
        for job in PIPELINE:
            progress.update(overall, description=f"[bold]{job.name}[/]: {job.description}")
            records.append(run_job(job, obj.spark, obj.conf, obj.lake, force=force))
            progress.advance(overall)
    print_summary(out, obj.lake, records, time.monotonic() - started)


@cli.command()
@click.option("--rows", type=click.IntRange(min=1), required=True, help="How many rows to generate.")
@click.option("--where", "where", multiple=True, metavar="COLUMN=VALUE",
              help="Generate only rows with this categorical value, e.g. --where purchased=true (repeatable).")
@click.option("--model", default=None, metavar="VERSION",
              help="Model version (a synthesize run id); default: the model behind synthetic.behavior.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same model, condition and seed: same rows.")
@click.pass_obj
def sample(obj: Context, rows: int, where: tuple[str, ...], model: str | None, seed: int):
    """Conditional sampling from a published GAN model into synthetic.samples.

    \b
    Example: 10,000 purchasing sessions from REES46-like traffic
      recsynth sample --rows 10000 --where purchased=true --where source=rees46
    A re-run with the same model, condition and seed replaces its own rows.
    """
    from recsynth.ops.runs import run_job
    from recsynth.tasks.sample import parse_condition, sample_job

    job = sample_job(rows, parse_condition(where), model, seed)
    record = run_job(job, obj.spark, obj.conf, obj.lake)
    out.print(f"{record.job}: [bold]{record.status}[/] (run {record.run_id}) {record.message}")


@cli.command()
@click.argument("query")
@click.option("--limit", default=50, show_default=True, help="Rows to print at most.")
@click.pass_obj
def sql(obj: Context, query: str, limit: int):
    """Run a SQL query on the lake and print the result, e.g. recsynth sql "SELECT * FROM silver.items LIMIT 5"."""
    from recsynth.pipeline import JOBS

    obj.lake.register_all({t for job in JOBS.values() for t in job.outputs} | {"ops.job_runs", "ops.data_quality", "synthetic.samples"})
    frame = obj.spark.sql(query)
    table = Table(*frame.columns, show_lines=False)
    for row in frame.limit(limit).collect():
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


@cli.command("spark-args")
@click.pass_obj
def spark_args(obj: Context):
    """Print the Spark settings of this conf as spark-submit / spark-sql arguments, one per line.

    \b
    Used by scripts/spark-sql.sh; by hand:
      mapfile -t ARGS < <(recsynth spark-args); spark-sql "${ARGS[@]}" -e "SELECT ..."
    """
    from recsynth.session import session_settings

    if obj.conf.spark.master:
        click.echo("--master")
        click.echo(obj.conf.spark.master)
    for key, value in session_settings(obj.conf).items():
        click.echo("--conf")
        click.echo(f"{key}={value}")


_register_job_commands()


def main(argv=None):
    """Console entry point: user errors print one clear message and exit 2, failed jobs exit 1."""
    from recsynth.errors import ConfigError, JobFailed

    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except ConfigError as err:
        click.secho("configuration error: ", fg="red", err=True, nl=False)
        click.echo(str(err), err=True)
        sys.exit(2)
    except JobFailed as err:
        click.secho("failed: ", fg="red", err=True, nl=False)
        click.echo(str(err), err=True)
        sys.exit(1)
    except RecsynthError as err:
        click.secho("error: ", fg="red", err=True, nl=False)
        click.echo(str(err), err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
