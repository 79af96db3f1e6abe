"""The table registry (recsynth.tables.TABLES) against the jobs that write the tables, the writers'
schemas, and docs/TABLES.md: one table, one writing job, one mode, one key, stated once."""
import importlib
import inspect

import pytest

from conftest import ROOT
from recsynth import tables as T
from recsynth.reporting import quality
from recsynth.runtime import runs
from recsynth.pipeline import JOBS
from recsynth.rec import topn
from recsynth.tasks import recommend, synthesize
from recsynth.tasks.sample import sample_job

EVERY_JOB = {**JOBS, "sample": sample_job(1, {}, None, 0)}
NO_KEY = "—"


def docs_rows() -> dict[str, list[str]]:
    """table name -> [job, mode, key, columns] of the rows of docs/TABLES.md's registry table."""
    rows, lines = {}, (ROOT / "docs" / "TABLES.md").read_text().splitlines()
    start = lines.index("# Table registry")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("# "))
    for line in lines[start:end]:
        if not line.startswith("| `"):
            continue
        name, *cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert name.strip("`") not in rows, f"{name} is listed twice in docs/TABLES.md"
        rows[name.strip("`")] = cells
    return rows


def test_names_are_unique_and_all_is_the_registry():
    assert len(T.REGISTRY) == len(T.TABLES)
    assert T.ALL == tuple(table.name for table in T.TABLES)


@pytest.mark.parametrize("job", sorted(EVERY_JOB))
def test_a_jobs_outputs_are_the_tables_the_registry_says_it_writes(job):
    assert sorted(EVERY_JOB[job].outputs) == sorted(T.outputs_of(job))
    records = set(T.written_by(job)) - set(T.outputs_of(job))
    assert records == ({T.OPS_DATA_QUALITY} if job == "clean" else set())  # clean's counts, one row set per run


def test_every_table_is_written_by_a_job_or_the_job_runner():
    assert {table.job for table in T.TABLES} == set(EVERY_JOB) | {T.RUNNER}
    assert T.written_by(T.RUNNER) == (T.OPS_JOB_RUNS,)  # one row per run of every job: run_job appends it
    assert T.outputs_of(T.RUNNER) == ()
    assert "T.OPS_JOB_RUNS" in inspect.getsource(runs._run_locked)


@pytest.mark.parametrize("table", T.TABLES, ids=lambda table: table.name)
def test_the_writer_is_one_hop_away(table):
    """The module the registry names refers to the table by its constant."""
    constant = next(name for name, value in vars(T).items() if name.isupper() and value == table.name)
    assert f"T.{constant}" in inspect.getsource(importlib.import_module(table.writer))


def test_writers_use_the_registrys_schemas():
    assert runs.JOB_RUNS_SCHEMA is T.schema(T.OPS_JOB_RUNS)
    assert quality.DATA_QUALITY_SCHEMA is T.schema(T.OPS_DATA_QUALITY)
    assert synthesize.QUALITY_SCHEMA is T.schema(T.SYNTHETIC_QUALITY)
    assert recommend.METRICS_SCHEMA is T.schema(T.RECS_METRICS)
    # the scorer's output: the table's columns less those the writer adds
    assert [*topn.TOP_N_SCHEMA.names, "model_version", "generated_at"] == list(T.REGISTRY[T.RECS_TOP_N].column_names())
    assert [*topn.SIMILAR_ITEMS_SCHEMA.names, "model_version", "generated_at"] == list(
        T.REGISTRY[T.RECS_SIMILAR_ITEMS].column_names())


def test_schema_columns_keep_commas_inside_types():
    assert T.schema_columns("a map<string,bigint>, b struct<x:int,y:array<int>>, c string") == (
        ("a", "map<string,bigint>"), ("b", "struct<x:int,y:array<int>>"), ("c", "string"))


def test_docs_list_every_table_once_as_the_registry_states_it():
    rows = docs_rows()
    assert list(rows) == list(T.ALL)
    for table in T.TABLES:
        job, mode, key, columns = rows[table.name]
        assert (job, mode, key) == (table.job_label, table.mode, table.key or NO_KEY), table.name
        if table.schema:
            assert [c.strip().strip("`") for c in columns.split(",")] == list(table.column_names()), table.name
        else:
            assert columns == table.columns, table.name


def test_a_table_without_a_fixed_schema_says_where_its_columns_come_from():
    with pytest.raises(KeyError, match="synth.continuous"):
        T.schema(T.SYNTHETIC_BEHAVIOR)
    with pytest.raises(ValueError, match="a key is needed"):
        T.Table("x.y", "gold", T.APPEND, None, schema="a int")
