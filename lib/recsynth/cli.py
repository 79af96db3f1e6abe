"""The `recsynth` command: one sub-command per job, `pipeline` for the whole chain, `sql`."""
from __future__ import annotations

import json
import sys
import time

import click
from rich.console import Console
from rich.table import Table

from recsynth import logs
from recsynth.config import ENV_VAR, ENVIRONMENTS, Conf, load_conf
from recsynth.errors import RecsynthError

console = Console(stderr=True)  # progress and log records
out = Console()  # results: the summary, tables, query rows


class Context:
    """Conf is validated before Spark starts; the session is built on first use."""

    def __init__(self, conf: Conf):
        self.conf = conf
        self._spark = None
        self._lake = None
        self.cluster = None  # the ClusterSpec of `recsynth cluster ...`

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
@click.option("--conf-file", "conf_files", multiple=True, metavar="YAML",
              help="Extra overlay applied after --env's, e.g. synth/online_retail_invoices.yaml (repeatable; a "
                   "relative path is also looked up in the conf folder).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one conf key, e.g. --set spark.shuffle_partitions=4 (repeatable).")
@click.pass_context
def cli(ctx, env, conf_dir, conf_files, overrides):
    """recsynth: e-commerce clickstream + catalog -> Delta lake (bronze, silver, gold) -> synthetic data
    and recommendations.

    \b
    Typical use:
      recsynth pipeline                      # ingest -> clean -> gold -> synthesize -> recommend
      recsynth sample --rows 1000 --where purchased=true
      recsynth sql "SELECT * FROM ops.job_runs ORDER BY started_at DESC LIMIT 5"
    Jobs are idempotent: a re-run ingests no file twice and skips jobs whose inputs did not change.
    """
    conf = load_conf(env, overrides, conf_dir, conf_files)
    logs.configure(conf, console)
    ctx.call_on_close(logs.reset)
    ctx.obj = Context(conf)


def _run(ctx_obj: Context, job_names, force: bool):
    from recsynth.runtime.runs import run_job
    from recsynth.pipeline import JOBS

    records = []
    for name in job_names:
        records.append(run_job(JOBS[name], ctx_obj.spark, ctx_obj.conf, ctx_obj.lake, force=force))
    return records


def _job_command(command_name: str, name: str, help_text: str):
    @cli.command(name=command_name, help=help_text)
    @click.option("--force", is_flag=True, help="Run even if inputs and conf are unchanged since the last success.")
    @click.pass_obj
    def command(obj: Context, force: bool):
        record = _run(obj, [name], force)[0]
        out.print(f"{record.job}: [bold]{record.status}[/] (run {record.run_id}) {record.message}")

    return command


def _command_names() -> list[str]:
    """The jobs' command names, in pipeline order."""
    from recsynth.pipeline import JOBS

    return [name.replace("_", "-") for name in JOBS]


def _register_job_commands():
    from recsynth.pipeline import JOBS

    for job in JOBS.values():
        _job_command(job.name.replace("_", "-"), job.name, f"Run the {job.name} job: {job.description}.")


@cli.command()
@click.option("--force", is_flag=True, help="Run every job even if its inputs are unchanged.")
@click.option("--until", type=click.Choice(_command_names()), default=None,
              help="Stop after this job, e.g. --until gold: the ETL jobs only.")
@click.pass_obj
def pipeline(obj: Context, force: bool, until: str | None):
    """Run the whole chain (ingest -> clean -> gold -> synthesize -> recommend; then synthesize-events ->
    evaluate-synthetic when clickstream.enabled) with progress, then print a summary."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from recsynth.runtime.runs import run_job
    from recsynth.reporting.summary import print_summary
    from recsynth.pipeline import pipeline_jobs

    jobs = pipeline_jobs(obj.conf, until and until.replace("-", "_"))
    if jobs is None:
        raise click.BadParameter(f"{until} runs in the pipeline only when clickstream.enabled is true",
                                 param_hint="--until")
    started = time.monotonic()
    records = []
    # transient: on a terminal the bar gives way to the summary; elsewhere it prints nothing
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        overall = progress.add_task("pipeline", total=len(jobs))
        for job in jobs:
            progress.update(overall, description=f"[bold]{job.name}[/]: {job.description}")
            records.append(run_job(job, obj.spark, obj.conf, obj.lake, force=force))
            progress.advance(overall)
    print_summary(out, obj.lake, records, time.monotonic() - started, logs.log_path(obj.conf))


@cli.command()
@click.option("--rows", type=click.IntRange(min=1), required=True, help="How many rows to generate.")
@click.option("--where", "where", multiple=True, metavar="COLUMN=VALUE",
              help="Generate only rows with this categorical value (--where purchased=true), this value of a "
                   "count learned as categories (--where n_carts=1) or this flag of a continuous column "
                   "(--where spend=nonzero, --where mean_price=null); repeatable.")
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
    from recsynth.runtime.runs import run_job
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
    from recsynth import tables as T

    from pyspark.errors import AnalysisException

    obj.lake.register_both_clickstreams(T.ALL)
    try:
        frame = obj.spark.sql(query)
    except AnalysisException as err:   # a syntax error, an unknown table or column: the query's, shown as Spark names it
        raise click.BadParameter(str(err).strip(), param_hint="QUERY") from None
    table = Table(*frame.columns, show_lines=False)
    for row in frame.limit(limit).collect():
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (for scripts and monitoring) instead of tables.")
@click.pass_context
def status(ctx, as_json: bool):
    """The newest run of each job (and how many failed since its last good run), every table's version,
    row count and last change, and the rows the newest clean run quarantined, by reason.

    It only reads: the tables by their paths (registered in a metastore or not), nothing is written.

    \b
    Exit code:
      0  the newest run of every job succeeded or was skipped (or nothing ran yet)
      1  the newest run of some job failed; for monitoring, e.g.
         recsynth status --json > status.json || notify "a recsynth job is failing"
    """
    from recsynth.reporting.status import collect_status, render
    from recsynth.pipeline import pipeline_jobs
    from recsynth.runtime.runs import run_name

    lake = ctx.obj.lake
    state = collect_status(lake, tuple(run_name(job, lake) for job in pipeline_jobs(ctx.obj.conf)))
    if as_json:
        click.echo(json.dumps(state.to_dict(), indent=2))
    else:
        render(state, out)
    if state.exit_code:
        ctx.exit(state.exit_code)


@cli.command()
@click.argument("ids", nargs=-1, required=True)
@click.pass_obj
def pseudonym(obj: Context, ids: tuple[str, ...]):
    """Print the pseudonym that gold, recs.top_n and every later table use for each real id
    (user or session, as in silver.events, e.g. retailrocket:257597), with this conf's key.

    \b
    recsynth pseudonym retailrocket:257597
    recsynth sql "SELECT * FROM recs.top_n WHERE user_id = '$(recsynth pseudonym retailrocket:257597 | cut -f2)'"
    """
    from recsynth.etl.pseudonyms import load_key
    from recsynth.etl.pseudonyms import pseudonym as pseudonym_of

    key = load_key(obj.conf.privacy.pseudonym)
    for real_id in ids:
        click.echo(f"{real_id}\t{pseudonym_of(real_id, key)}")


@cli.command("spark-args")
@click.pass_obj
def spark_args(obj: Context):
    """Print the Spark settings of this conf as spark-submit / spark-sql arguments, one per line.

    \b
    Used by scripts/spark-sql.sh; by hand:
      mapfile -t ARGS < <(recsynth spark-args); spark-sql "${ARGS[@]}" -e "SELECT ..."
    """
    from recsynth.metastore import ensure_server
    from recsynth.session import submit_arguments

    ensure_server(obj.conf)  # the shared metastore must answer before spark-sql starts
    for argument in submit_arguments(obj.conf):
        click.echo(argument)


def _service_commands(group, services_of, after_start=None):
    """start / stop / status sub-commands for background services (pid files and logs in ops.service_dir)."""
    from pathlib import Path

    from recsynth.paths import resolve_uri

    def folder(conf) -> Path:
        return Path(resolve_uri(conf.ops.service_dir))

    @group.command("start")
    @click.pass_obj
    def start_command(obj: Context):
        """Start (idempotent: a running service is left as it is)."""
        from recsynth.services import start

        for service in services_of(obj):
            state = start(service, folder(obj.conf))
            out.print(f"{service.name}: listening on {state.address} (pid {state.pid or 'not ours'}, log {state.log})")
        if after_start:
            after_start(obj)

    @group.command("stop")
    @click.pass_obj
    def stop_command(obj: Context):
        """Stop what `start` started on this machine."""
        from recsynth.services import stop

        for service in reversed(services_of(obj)):
            out.print(f"{service.name}: {'stopped' if stop(service, folder(obj.conf)) else 'was not running'}")

    @group.command("status")
    @click.pass_obj
    def status_command(obj: Context):
        """Is it listening, under which pid, where is its log (exit code 1 when something is down)."""
        from recsynth.services import state

        states = [state(service, folder(obj.conf)) for service in services_of(obj)]
        for current in states:
            out.print(f"{current.name}: {'up' if current.listening else 'down'} on {current.address}"
                      f" (pid {current.pid or '-'}, log {current.log})")
        if not all(current.listening for current in states):
            sys.exit(1)


@cli.group()
def metastore():
    """The Derby network server holding the Hive metastore (lake.metastore_server), shared by jobs,
    spark-sql and the SQL server. Jobs start it on first use; stop it with `recsynth metastore stop`."""


def _metastore_services(obj: Context):
    from recsynth.metastore import server

    if not obj.conf.lake.metastore_server:
        raise click.UsageError("lake.metastore_server is null in this conf: the metastore is embedded in each job's JVM")
    return [server(obj.conf)]


_service_commands(metastore, _metastore_services)


@cli.group("sql-server")
def sql_server():
    """The Spark Thrift (JDBC/ODBC) server on the lake, at sql_server.host:sql_server.port (127.0.0.1:10000).

    
    recsynth sql-server start
    beeline -u jdbc:hive2://127.0.0.1:10000 -e "SELECT * FROM recs.top_n WHERE user_id = '42' ORDER BY rank"
    recsynth sql-server stop
    Jobs may run while it serves: both use the shared metastore (lake.metastore_server).
    """


def _sql_server_services(obj: Context):
    from recsynth.metastore import ensure_server
    from recsynth.session import submit_arguments
    from recsynth.sql_server import thrift_server

    service = thrift_server(obj.conf, submit_arguments(obj.conf))
    ensure_server(obj.conf)
    return [service]


_service_commands(sql_server, _sql_server_services)


@cli.group()
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Workers to start.")
@click.option("--cores", default=2, show_default=True, type=click.IntRange(min=1), help="Cores per worker.")
@click.option("--memory", default="4g", show_default=True, help="Memory per worker (executors share it).")
@click.option("--port", default=7077, show_default=True, help="Master port; workers take the next ports.")
@click.option("--ui-port", default=8080, show_default=True, help="Master web UI port; workers take the next ports.")
@click.pass_obj
def cluster(obj: Context, workers, cores, memory, port, ui_port):
    """A Spark standalone cluster (master + workers) on 127.0.0.1 from the installed pyspark.

    
    recsynth cluster --workers 1 --cores 2 start
    scripts/submit-pipeline.sh            # spark-submit the whole pipeline to spark://127.0.0.1:7077
    recsynth cluster stop
    """
    from recsynth.cluster import ClusterSpec

    obj.cluster = ClusterSpec(port=port, ui_port=ui_port, workers=workers, cores=cores, memory=memory)


def _cluster_services(obj: Context):
    from pathlib import Path

    from recsynth.cluster import services
    from recsynth.paths import resolve_uri

    return services(obj.cluster, Path(resolve_uri(obj.conf.ops.service_dir)))


def _wait_for_workers(obj: Context):
    from recsynth.cluster import wait_for_workers

    wait_for_workers(obj.cluster)
    out.print(f"master {obj.cluster.master_url} has {obj.cluster.workers} worker(s); "
              f"web UI http://{obj.cluster.host}:{obj.cluster.ui_port}")


_service_commands(cluster, _cluster_services, after_start=_wait_for_workers)


_register_job_commands()


def main(argv=None):
    """Console entry point: user errors print one clear message and exit 2, failed jobs exit 1 (and
    `status` exits 1 when the newest run of a job failed)."""
    from recsynth.errors import ConfigError, JobFailed

    try:
        code = cli.main(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:  # a command's ctx.exit(code), e.g. `status` with a failing job
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except ConfigError as err:
        _fail("configuration error", err, 2)
    except JobFailed as err:
        _fail("failed", err, 1)
    except RecsynthError as err:
        _fail("error", err, 1)


def _fail(label: str, err: Exception, code: int) -> None:
    """Print one clear message and where the run's full log is (Spark's and the ranks' output,
    tracebacks); exit with `code`."""
    click.secho(f"{label}: ", fg="red", err=True, nl=False)
    click.echo(str(err), err=True)
    if logs.last_file() is not None:
        click.echo(f"full log: {logs.last_file()}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
