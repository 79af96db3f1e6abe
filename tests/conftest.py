"""One local SparkSession (Delta enabled, temporary warehouse) for the whole test session,
built by recsynth's own session code; each test that needs a lake gets a fresh root."""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from recsynth.config import load_conf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RECSYNTH = str(Path(sys.executable).parent / "recsynth")
_lake_numbers = itertools.count()
# The pseudonymisation key of every test run and of the jobs the tests start in subprocesses.
TEST_PSEUDONYM_KEY = "recsynth-tests-not-a-secret-0123456789"
os.environ.setdefault("RECSYNTH_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)


def lake_overrides(base: Path) -> list[str]:
    """Conf overrides that point recsynth at the test slices and a temporary warehouse."""
    return [
        f"lake.root={base}/lake",
        f"lake.metastore_dir={base}/metastore",
        "lake.metastore_server=null",  # embedded: each test session its own metastore
        f"ops.service_dir={base}/services",  # services' pid files and logs, and recsynth.log
        f"spark.delta_jars_dir={ROOT}/.cache/jars",
        "spark.shuffle_partitions=2",
        "spark.driver_memory=2g",
        "spark.extra={spark.ui.enabled: 'false', spark.ui.showConsoleProgress: 'false'}",
        "tracking.enabled=false",  # MLflow's store costs seconds per model job: on where a test reads it (TRACKED)
        f"sources.retailrocket.events.path={DATA}/retailrocket/events*.csv",
        f"sources.retailrocket.category_tree.path={DATA}/retailrocket/category_tree.csv",
        f"sources.rees46.events.path={DATA}/rees46/*.csv",
        f"sources.rees46.catalog.path={DATA}/rees46/*.csv",
        f"sources.online_retail.events.path={DATA}/online_retail/*.csv.gz",
        f"sources.online_retail.catalog.path={DATA}/online_retail/*.csv.gz",
    ]


TRACKED = "tracking.enabled=true"


def job_process_options(base: Path) -> list[str]:
    """recsynth --set options for a job run in its own process on a lake under `base`, fed by the
    retailrocket slice, with no Hive metastore (a killed or failing JVM must not hold one)."""
    return [f"--set={o}" for o in [*lake_overrides(base), "lake.metastore_dir=null", "sources.rees46.enabled=false"]]


# A GAN small enough for tests: the synthesize job's mechanics in seconds, not its quality.
SMALL_GAN = [
    # a 2-epoch GAN is not held to rare shares or coverage; constraints (every identity in every row) still gate
    "synth.em_iterations=5", "synth.quality.min_overall=0",
    *(f"synth.quality.rare_shares.{name}.within=[0, 1000]" for name in ("paid_purchase", "several_categories",
                                                                       "purchase", "cart", "priced")),
    "synth.quality.min_range_coverage=0", "synth.quality.min_category_coverage=0", "synth.max_modes=4",
    "synth.sample_partitions=2",
    "synth.gan={embedding_dim: 16, generator_dims: [32, 32], discriminator_dims: [32, 32], pac: 4, batch_size: 100,"
    " epochs: 2, learning_rate: 0.0002, gradient_penalty: 10.0}",
]


# scripts/run_tests.sh runs the suite on two workers (pytest-xdist, --dist loadgroup): much of it
# waits on JVM and Horovod start-ups. A module is one unit of work, so its module-scoped fixtures
# are built once; modules sharing a costly session fixture form one unit (the served pipeline
# takes minutes). Units go out in the order below, the longest first, so that the two workers end
# together; the rest follow in file order.
SHARED_UNITS = {"test_sql_server": "served_pipeline", "test_notebooks": "served_pipeline"}
LONGEST_FIRST = ("served_pipeline", "test_cluster", "test_storage_faults", "test_synthesize_job", "test_driver_kill",
                 "test_recommend_job", "test_two_tower", "test_sequence", "test_recommend_resume", "test_gan", "test_train",
                 "test_source_changes", "test_pipeline", "test_fuzz_ingest", "test_spark_submit")


def pytest_addoption(parser):
    parser.addoption("--extended", action="store_true",
                     help="also run the extended tier (marker `extended`: faults injected into whole job runs, then "
                          "re-runs; the standalone cluster), otherwise skipped with its reason")


# The extended tier holds the tests that each run whole jobs several times in their own processes
# and cost the most (a full disk, a killed GAN run, the cluster losing executors): about 13 of a
# 2-core run's minutes together, which the 60-minute CI budget, measured on a slower host, leaves out.
EXTENDED_SKIP = pytest.mark.skip(reason="extended tier (faults injected into whole job runs, the standalone cluster): "
                                        "run with scripts/run_tests.sh --extended")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the group marks into units
def pytest_collection_modifyitems(config, items):
    def unit(item) -> str:
        module = item.module.__name__.rpartition(".")[2]
        return SHARED_UNITS.get(module, module)

    for item in items:
        item.add_marker(pytest.mark.xdist_group(unit(item)))
        if "extended" in item.keywords and not config.getoption("--extended"):
            item.add_marker(EXTENDED_SKIP)
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(unit(item), len(rank)))  # stable: file order within a rank


@pytest.fixture(scope="session")
def session_base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recsynth")


@pytest.fixture(scope="session")
def base_conf(session_base):
    # The one shared session serves every in-process job of the suite: more room than a job's own JVM
    return load_conf("local", [*lake_overrides(session_base), "spark.driver_memory=4g"], ROOT / "conf")


@pytest.fixture(scope="session")
def spark(base_conf):
    from recsynth.session import get_spark

    session = get_spark(base_conf)
    yield session
    session.stop()


@pytest.fixture
def keep():
    """The jobs' `keep` (runtime.cache.cached_frames) for a test: frames persisted, released after it."""
    from recsynth.runtime.cache import cached_frames

    with cached_frames() as kept:
        yield kept


@pytest.fixture(scope="module", autouse=True)
def _drop_cached_frames_after_each_module():
    """Free what a module left in the shared session's JVM: cached frames (a failed job's persisted
    ones stay), a model's cached RDDs, and Delta's snapshot of every table of every test lake so
    far. Over the whole suite these filled a 2 GiB heap and failed the last modules."""
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.catalog.clearCache()
        for rdd in list(session.sparkContext._jsc.getPersistentRDDs().values()):
            rdd.unpersist(False)
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


@pytest.fixture
def conf_for(session_base):
    """Build a conf with extra overrides and its own lake root (the session stays shared)."""

    def build(*overrides: str):
        root = session_base / f"lake{next(_lake_numbers)}"
        return load_conf("local", [*lake_overrides(session_base), f"lake.root={root}", *overrides], ROOT / "conf")

    return build


@pytest.fixture
def lake(spark, conf_for):
    from recsynth.lake import Lake

    return Lake(spark, conf_for())

# A recommender small enough for tests: the recommend job's mechanics in seconds, not its quality.
SMALL_RECS = [
    "recs.k=5", "recs.history_length=5", "recs.num_proc=2", "recs.similar_items.k=3",
    "recs.als={rank: 4, reg_param: 0.1, alpha: 10.0, max_iter: 2}",
    "recs.two_tower={embedding_dim: 8, feature_dim: 4, tower_dims: [16], output_dim: 8, batch_size: 32, epochs: 2,"
    " learning_rate: 0.01, temperature: 0.1, logq_correction: true}",
    "recs.ease={max_items: 500, l2: [10.0, 1000.0], max_neighbours: 20}", "recs.itemknn.max_neighbours=20",
    "recs.sequence={max_length: 10, embedding_dim: 8, blocks: 1, heads: 2, dropout: 0.0, batch_size: 64,"
    " learning_rate: 0.01, max_epochs: 3, patience: 1, early_stopping_users: 100, negatives: 50,"
    " full_softmax_max_items: 100, horizon: 2, logq_correction: true}",
    "recs.bootstrap_replicates=50",
]
# The whole pipeline under test (served, on the cluster): nothing tuned on validation and two
# baselines beside the sequence model (test_recommend_job covers every baseline and the tuning);
# each model is still fitted, scored on test and served.
END_TO_END_RECS = ["recs.validation_split=null", "recs.serve=recent", "recs.baselines=[recent, ease]"]


def model_job_overrides(base: Path, *overrides: str) -> list[str]:
    """Conf overrides of a lake under `base` fed by the retailrocket slice only (model job tests)."""
    return [*lake_overrides(base.parent), f"lake.root={base}/lake", "sources.rees46.enabled=false", *overrides]


def gold_lake_under(spark, overrides: list[str]):
    """(conf, lake) with the ETL jobs run: the gold tables a model job's tests start from."""
    from recsynth.lake import Lake
    from recsynth.runtime.runs import run_job
    from recsynth.pipeline import ETL

    conf = load_conf("local", overrides, ROOT / "conf")
    lake = Lake(spark, conf)
    for job in ETL:
        run_job(job, spark, conf, lake)
    return conf, lake


def gold_lake_copy(spark, etl_reference, overrides: list[str]):
    """(conf, lake) whose lake starts as a copy of the reference ETL lake: the gold tables a model
    job's tests start from, without running the ETL jobs again (a minute or more each). Delta logs
    hold relative paths, so the copied folder is the same tables. `overrides` must leave the ETL
    conf as the reference's: checked."""
    from recsynth.lake import Lake

    conf = load_conf("local", overrides, ROOT / "conf")
    reference = load_conf("local", model_job_overrides(Path(etl_reference.root).parent), ROOT / "conf")
    for section in ("sources", "clean", "gold", "privacy"):
        assert getattr(conf, section) == getattr(reference, section), f"{section} differs from the reference lake's"
    shutil.copytree(etl_reference.root, conf.lake.root)
    return conf, Lake(spark, conf)


@pytest.fixture(scope="session")
def etl_reference(spark, tmp_path_factory, worker_id):
    """The ETL jobs run once without faults on the retailrocket slice: the lake that each fault
    test's lake must equal, row for row, after its re-runs, and that model job tests copy
    (gold_lake_copy). Read only, so built once per test run: the first test process to need it
    builds it under a file lock, the other reads the same folder (tables are read by path)."""
    from recsynth.lake import Lake

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker_id != "master" else shared  # pytest-xdist: the workers' common folder
    overrides, built = model_job_overrides(shared / "etl-reference"), shared / "etl-reference.built"
    with open(shared / "etl-reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if built.exists():
            return Lake(spark, load_conf("local", overrides, ROOT / "conf"))
        _, lake = gold_lake_under(spark, overrides)
        built.touch()
        return lake


# Raw rows planted beside the retailrocket slice that the clean job must quarantine, one line
# each, and the reasons they get.
PLANTED_BAD_EVENTS = """timestamp,visitorid,event,itemid,transactionid
1433221400000,visitor-x,view,355908,
1433221400001,257597,click,355908,
1433221400002,257597,hover,248676,
not-a-time,257597,view,248676,
"""
PLANTED_QUARANTINE = {"unknown_event_type": 2, "bad_id": 1, "bad_timestamp": 1}


class ServedPipeline(NamedTuple):
    overrides: list[str]                    # the conf overrides the pipeline ran with
    options: list[str]                      # the same as recsynth --set options
    lake: Path                              # the lake's folder
    port: int                               # the SQL server's port
    run: subprocess.CompletedProcess        # `recsynth pipeline`, its console output captured


@pytest.fixture(scope="session")
def served_pipeline(tmp_path_factory):
    """The SQL server up first, then the whole pipeline in its own process (its own JVM) against
    the same network-Derby metastore, on both source slices plus planted bad rows, with small
    models. The SQL server, notebook and CLI summary tests all read this one lake: a pipeline run
    costs minutes of the suite's budget. The server is stopped at the end of the test session."""
    base = tmp_path_factory.mktemp("served")
    raw = base / "raw" / "retailrocket"
    raw.mkdir(parents=True)
    shutil.copy(DATA / "retailrocket" / "events.csv", raw / "events.csv")
    (raw / "events_planted.csv").write_text(PLANTED_BAD_EVENTS)
    port = free_port()
    overrides = [*lake_overrides(base), f"sources.retailrocket.events.path={raw}/events*.csv",
                 f"lake.metastore_server=127.0.0.1:{free_port()}", f"sql_server.port={port}",
                 "spark.driver_memory=1g", TRACKED,
                 *SMALL_GAN, *SMALL_RECS, *END_TO_END_RECS]
    options = [f"--set={o}" for o in overrides]
    try:
        recsynth(options, "sql-server", "start")
        yield ServedPipeline(overrides, options, base / "lake", port, recsynth(options, "pipeline", timeout=1800))
    finally:
        subprocess.run([RECSYNTH, *options, "sql-server", "stop"], cwd=ROOT, timeout=120)
        subprocess.run([RECSYNTH, *options, "metastore", "stop"], cwd=ROOT, timeout=120)


def at_hour(hours: float) -> dt.datetime:
    """A timestamp `hours` after a fixed day, for hand-made event frames."""
    return dt.datetime(2024, 3, 1) + dt.timedelta(hours=hours)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def recsynth(options: list[str], *command: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the recsynth command in its own process (its own JVM); fail with its output's end."""
    env = {**os.environ, "COLUMNS": "1000"}  # one log record per line, whatever its length
    done = subprocess.run([RECSYNTH, *options, *command], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"recsynth {' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@contextlib.contextmanager
def standalone_cluster(base: Path):
    """A Spark standalone master and one 2-core worker on 127.0.0.1, started and stopped by
    `recsynth cluster` with its files under `base`; yields the environment for submit-pipeline.sh."""
    port, ui_port = free_port(), free_port()
    cluster = [f"--set=ops.service_dir={base}/services", "cluster", "--port", str(port), "--ui-port", str(ui_port),
               "--cores", "2", "--memory", "3g"]
    try:
        started = recsynth(cluster[:1], *cluster[1:], "start")
        assert "has 1 worker(s)" in started.stdout
        yield {**os.environ, "RECSYNTH_MASTER": f"spark://127.0.0.1:{port}", "RECSYNTH_EXECUTOR_MEMORY": "1g"}
    finally:
        subprocess.run([RECSYNTH, *cluster, "stop"], cwd=ROOT, timeout=120)


def events_of(folder: Path, kind: str) -> list[dict]:
    """The events of one kind in the one Spark event log written to `folder`."""
    (log_file,) = [p for p in folder.iterdir() if p.is_file()]
    lines = (json.loads(line) for line in log_file.read_text().splitlines())
    return [e for e in lines if e["Event"] == kind]


def settled_epoch(folder: str, quiet_s: float = 10.0, limit_s: float = 300.0) -> int:
    """The checkpoint epoch once nothing writes there any more: Horovod runs rank processes in
    sessions of their own, so they can outlive the killed driver for a few seconds."""
    from recsynth.train.checkpoints import load_latest

    started = changed = time.monotonic()
    last = load_latest(folder).epoch
    while time.monotonic() - changed < quiet_s:
        assert time.monotonic() - started < limit_s, "ranks kept training after their driver was killed"
        time.sleep(0.5)
        now = load_latest(folder).epoch
        if now != last:
            last, changed = now, time.monotonic()
    return last


def table_folder(lake: Path, table: str) -> Path:
    schema, name = table.split(".")
    return lake / schema / name


def delta(spark, lake: Path, table: str):
    """A table of a lake written by another process, read by path (no shared metastore needed)."""
    return spark.read.format("delta").load(str(table_folder(lake, table)))


def is_delta_table(lake: Path, table: str) -> bool:
    """A Delta table is there once its first commit is: data files alone are not one."""
    return any((table_folder(lake, table) / "_delta_log").glob("*.json"))


def assert_registered_schemas(lake, names) -> None:
    """Each named table of the lake has the columns, in order, and the types that the table
    registry's DDL gives it (tables built by transforms are held to the registry this way)."""
    from recsynth import tables as T

    for name in names:
        actual = tuple((f.name, f.dataType.simpleString()) for f in lake.read(name).schema.fields)
        assert actual == T.schema_columns(T.schema(name)), name


# Columns that name the run or its time: they differ between any two runs by design.
RUN_COLUMNS = {"_ingest_run_id", "_ingested_at", "run_id", "ingest_run_id", "quarantined_at", "measured_at"}


def assert_tables_equal(spark, lake: Path, expected_lake, tables) -> None:
    """Each table of the lake at `lake` equals, row for row, the same table of `expected_lake`
    (a Lake), apart from the run ids and times; a table it lacks must be missing too."""
    from pyspark.testing import assertDataFrameEqual

    for table in tables:
        if not expected_lake.exists(table):  # e.g. bronze.catalog of a source without one
            assert not is_delta_table(lake, table), table
            continue
        actual, expected = delta(spark, lake, table), expected_lake.read(table)
        actual, expected = (frame.drop(*[c for c in frame.columns if c in RUN_COLUMNS]) for frame in (actual, expected))
        assert actual.count() == expected.count(), table
        assertDataFrameEqual(actual, expected)
