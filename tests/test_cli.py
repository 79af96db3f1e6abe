"""The `recsynth` command as a user runs it: help and clear config errors (its pipeline summary and
`recsynth sql` are tested on the served pipeline, tests/test_sql_server.py)."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT
from recsynth.cli import cli

RECSYNTH = [sys.executable, "-m", "recsynth.cli"]


@pytest.mark.parametrize("command", [[], ["pipeline"], ["ingest"], ["clean"], ["gold"], ["recommend"], ["sql"], ["status"]])
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output and "--help" in result.output


def test_bad_config_stops_before_spark_with_one_clear_message():
    done = subprocess.run([*RECSYNTH, "--set", "spark.shuffle_partitions=many", "pipeline"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "command line: spark.shuffle_partitions" in done.stderr and "integer" in done.stderr
    assert "Traceback" not in done.stderr and "Spark" not in done.stderr


def test_the_pipeline_ends_at_the_job_named_by_until():
    from recsynth.config import load_conf
    from recsynth.pipeline import pipeline_jobs

    conf = load_conf("local", [], ROOT / "conf")
    assert [job.name for job in pipeline_jobs(conf, "gold")] == ["ingest", "clean", "gold"]
    assert [job.name for job in pipeline_jobs(conf)] == ["ingest", "clean", "gold", "synthesize", "recommend"]
    assert pipeline_jobs(conf, "synthesize_events") is None  # not in a run without clickstream.enabled
    clickstream = load_conf("local", ["clickstream.enabled=true"], ROOT / "conf")
    assert pipeline_jobs(clickstream, "synthesize_events")[-1].name == "synthesize_events"
    refused = CliRunner().invoke(cli, ["pipeline", "--until", "synthesize-events"])
    assert refused.exit_code == 2 and "runs in the pipeline only when clickstream.enabled is true" in refused.output
    assert CliRunner().invoke(cli, ["pipeline", "--until", "silver"]).exit_code == 2


def test_unknown_key_in_a_conf_file(tmp_path):
    (tmp_path / "defaults.yaml").write_text((ROOT / "conf" / "defaults.yaml").read_text() + "\nspakr: {}\n")
    done = subprocess.run([*RECSYNTH, "--conf-dir", str(tmp_path), "ingest"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{tmp_path / 'defaults.yaml'}: spakr: unknown key" in done.stderr


def test_a_failure_names_the_full_log(tmp_path):
    options = [f"ops.service_dir={tmp_path}", f"lake.root={tmp_path}/lake", "lake.metastore_server=null",
               "lake.metastore_dir=null", f"spark.delta_jars_dir={tmp_path}/no-jars"]  # fails before Spark starts
    done = subprocess.run([*RECSYNTH, *[f"--set={o}" for o in options], "ingest"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "configuration error: spark.delta_jars_dir" in done.stderr
    assert f"full log: {tmp_path / 'recsynth.log'}" in done.stderr
