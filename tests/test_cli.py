"""The `recsynth` command as a user runs it: help, clear config errors, pipeline summary, SQL."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT, SMALL_GAN, SMALL_RECS, lake_overrides
from recsynth.cli import cli, main

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


def test_unknown_key_in_a_conf_file(tmp_path):
    (tmp_path / "defaults.yaml").write_text((ROOT / "conf" / "defaults.yaml").read_text() + "\nspakr: {}\n")
    done = subprocess.run([*RECSYNTH, "--conf-dir", str(tmp_path), "ingest"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{tmp_path / 'defaults.yaml'}: spakr: unknown key" in done.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_pipeline_prints_a_summary_and_sql_answers(spark, tmp_path, capsys):
    overrides = [f"--set={o}" for o in [*lake_overrides(tmp_path), "sources.rees46.enabled=false", *SMALL_GAN, *SMALL_RECS]]
    main([*overrides, "--conf-dir", str(ROOT / "conf"), "pipeline"])
    printed = capsys.readouterr().out
    for expected in ("Jobs", "gold.behavior", "silver.quarantine", "recs.top_n", "Recommenders on the test period",
                     str(tmp_path / "lake"), "Try: recsynth sql"):
        assert expected in printed
    main([*overrides, "sql", "SELECT count(*) AS n FROM silver.events"])
    printed = capsys.readouterr().out
    assert str(spark.read.format("delta").load(f"{tmp_path}/lake/silver/events").count()) in printed
