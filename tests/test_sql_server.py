"""The Spark Thrift server on the lake, queried with a real client (PyHive) while and after the
whole pipeline runs in another JVM against the same (network Derby) metastore; the pipeline's
console summary and `recsynth sql` on its lake."""
from __future__ import annotations

import ipaddress
import os
import re
import subprocess

import pytest

from console import foreign_console_lines
from conftest import DATA, ROOT, delta, recsynth

# the module's whole pipeline runs inside its first test's time budget
pytestmark = [pytest.mark.slow, pytest.mark.horovod, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def cursor(served_pipeline):
    from pyhive import hive

    connection = hive.connect(host="127.0.0.1", port=served_pipeline.port, username="analyst")
    yield connection.cursor()
    connection.close()


def test_jobs_ran_while_the_server_held_the_metastore(served_pipeline):
    assert "Recommenders on the test period" in served_pipeline.run.stdout  # the pipeline got to its end
    status = recsynth(served_pipeline.options, "sql-server", "status")
    assert f"sql-server: up on 127.0.0.1:{served_pipeline.port}" in status.stdout


def test_the_pipeline_prints_a_summary_and_sql_answers(spark, served_pipeline, capsys):
    from recsynth.cli import main

    lake = served_pipeline.lake
    for expected in ("Jobs", "gold.behavior", "silver.quarantine", "recs.top_n", "Recommenders on the test period",
                     str(lake), "Try: recsynth sql"):
        assert expected in served_pipeline.run.stdout
    # in this process (its session: no JVM start-up), on the served lake
    main([*served_pipeline.options, "--set=lake.metastore_server=null", "--conf-dir", str(ROOT / "conf"),
          "sql", "SELECT count(*) AS n FROM silver.events"])
    assert str(delta(spark, lake, "silver.events").count()) in capsys.readouterr().out
    for query, named in [("SELECT count(*) FROM (DESCRIBE HISTORY silver.events)", "PARSE_SYNTAX_ERROR"),
                         ("SELECT * FROM silver.no_such_table", "TABLE_OR_VIEW_NOT_FOUND")]:
        with pytest.raises(SystemExit) as stopped:   # the user's query is wrong: one message, no traceback
            main([*served_pipeline.options, "--set=lake.metastore_server=null", "--conf-dir", str(ROOT / "conf"),
                  "sql", query])
        printed = capsys.readouterr().err
        assert stopped.value.code == 2 and "Invalid value for QUERY" in printed and named in printed
        assert "Traceback" not in printed


def test_the_console_shows_recsynths_lines_only(served_pipeline):
    """Third-party output (Spark, TensorFlow, the Horovod ranks) goes to the log file; the
    console reads like a report."""
    printed = served_pipeline.run.stdout + served_pipeline.run.stderr
    assert foreign_console_lines(printed) == [], printed[-4000:]
    assert len(printed.splitlines()) <= 120, printed


def test_a_users_recommendations_match_the_delta_table(spark, served_pipeline, cursor):
    top_n = delta(spark, served_pipeline.lake, "recs.top_n")
    user = top_n.orderBy("user_id").first()["user_id"]
    expected = [(r["rank"], r["item_id"]) for r in top_n.where(f"user_id = '{user}'").orderBy("rank").collect()]
    cursor.execute(f"SELECT rank, item_id FROM recs.top_n WHERE user_id = '{user}' ORDER BY rank")
    assert cursor.fetchall() == expected
    cursor.execute("SELECT count(*), count(DISTINCT user_id) FROM recs.top_n")
    assert cursor.fetchall() == [(top_n.count(), top_n.select("user_id").distinct().count())]


def test_quality_and_privacy_scores_are_served(spark, served_pipeline, cursor):
    quality = delta(spark, served_pipeline.lake, "synthetic.quality").first()
    cursor.execute("SELECT model_version, quality_overall, membership_auc FROM synthetic.quality")
    assert cursor.fetchall() == [(quality["model_version"], quality["quality_overall"], quality["membership_auc"])]


def test_the_last_runs_are_served(spark, served_pipeline, cursor):
    runs = delta(spark, served_pipeline.lake, "ops.job_runs")
    cursor.execute("SELECT job, status FROM ops.job_runs ORDER BY started_at")
    served_runs = cursor.fetchall()
    assert served_runs == [(r["job"], r["status"]) for r in runs.orderBy("started_at").collect()]
    assert sorted(served_runs) == sorted((job, "succeeded") for job in ("ingest", "clean", "gold", "synthesize", "recommend"))


def test_every_example_query_in_the_docs_runs(cursor):
    queries = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "SQL.md").read_text(), flags=re.S)
    assert len(queries) >= 7
    for query in queries:
        cursor.execute(query.strip())
        assert cursor.description, query  # every example returns a result set
        cursor.fetchall()


def loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback  # Java reports ::ffff:127.0.0.1


def test_the_server_listens_on_loopback_only(served_pipeline):
    import psutil

    port = served_pipeline.port
    addresses = {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port}
    assert addresses and all(loopback(a) for a in addresses), addresses
    assert not loopback("0.0.0.0") and not loopback("::")


def test_nothing_personal_in_logs_metrics_or_models(served_pipeline):
    """Real user ids stop at silver: the pipeline's output, MLflow's store and the saved models
    hold none (ids are pseudonymised before gold, and only aggregates are tracked)."""
    lake, pipeline = served_pipeline.lake, served_pipeline.run
    real_users = {f"retailrocket:{line.split(',')[1]}" for path in (DATA / "retailrocket").glob("events*.csv")
                  for line in path.read_text().splitlines()[1:]}

    def leaked(text: str) -> set[str]:
        return set(re.findall(r"retailrocket:\d+", text)) & real_users

    assert not leaked(pipeline.stdout + pipeline.stderr)
    assert not leaked((lake.parent / "services" / "recsynth.log").read_text())  # the ranks' and Spark's output too
    stored = [p for folder in ("mlflow", "models") for p in (lake / folder).rglob("*") if p.is_file()]
    assert stored and not any(leaked(p.read_bytes().decode("latin-1")) for p in stored)


def test_beeline_as_the_readme_runs_it(served_pipeline):
    done = subprocess.run([str(ROOT / "scripts" / "beeline.sh"), "--outputformat=csv2", "-e",
                           "SELECT count(*) AS runs FROM ops.job_runs WHERE status = 'succeeded'"],
                          env={**os.environ, "RECSYNTH_JDBC_URL": f"jdbc:hive2://127.0.0.1:{served_pipeline.port}"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runs\n5\n" in done.stdout  # beeline opens its session with USE default: Delta's catalog must load there
