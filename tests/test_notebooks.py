"""The notebooks in notebooks/ run as tests (as recommenders' tests/*/test_notebooks_*.py do):
each one is executed headless with small parameters, in its own kernel (this interpreter) with its
own SparkSession, against a lake built by the real pipeline on the test slices, and must print
the values the lake holds and draw its plots. They are saved without outputs."""
import re

import nbformat
import pytest
from pyspark.sql import functions as F

from conftest import PLANTED_QUARANTINE, ROOT
from recsynth import tables as T
from recsynth.config import load_conf
from recsynth.lake import Lake
from recsynth.notebooks import NotebookError, default_parameters, inject_parameters, run_notebook

NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_lake_quality", "02_synthetic_vs_real", "03_recommendation_metrics")
def on_the_lake(test):
    """Executes a notebook on the pipeline's lake: minutes, Horovod ranks in the fixture."""
    for mark in (pytest.mark.spark, pytest.mark.slow, pytest.mark.horovod, pytest.mark.timeout(1800)):
        test = mark(test)
    return test


# --- the saved notebooks ------------------------------------------------------------------------

def load(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_the_notebooks_folder_holds_the_three_notebooks():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_saved_without_outputs(name):
    nb = load(name)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code), \
        f"{name}: clear the outputs before saving (Jupyter: Edit > Clear Outputs of All Cells)"
    assert not any("execution" in cell.metadata for cell in code)


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_take_parameters_and_use_the_package(name):
    nb = load(name)
    params = default_parameters(nb)
    assert params["env"] == "local" and params["overrides"] == [] and params["conf_dir"] is None
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    for call in ("load_conf(env,", "get_spark(conf)", "Lake(spark, conf)", "lake.read(T."):
        assert call in source, f"{name} does not build its session with the package's code ({call})"


def test_parameters_are_injected_after_the_parameters_cell():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("env = 'local'\noverrides = []", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(env)"),
    ])
    inject_parameters(nb, {"env": "standalone", "overrides": ["lake.root=/x"]})
    inject_parameters(nb, {"overrides": ["lake.root=/y"]})  # a second injection replaces the first
    assert [c.source for c in nb.cells[1:3]] == ["env = 'local'\noverrides = []", "# Parameters\noverrides = ['lake.root=/y']\n"]
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"] and len(nb.cells) == 4
    with pytest.raises(NotebookError, match="not a Python identifier"):
        inject_parameters(nb, {"lake.root": "/x"})
    with pytest.raises(NotebookError, match="no cell tagged 'parameters'"):
        inject_parameters(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), {"x": 2})


def test_the_kernel_ends_with_the_notebook(tmp_path):
    """Each notebook's kernel (and with it its Spark JVM) is shut down once the run ends, whether
    a cell failed or not."""
    import psutil

    def kernels():
        return [p for p in psutil.Process().children(recursive=True) if "ipykernel_launcher" in " ".join(p.cmdline())]

    cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("print(x)")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))
    ran = run_notebook(path, {"x": 2})
    assert ran.cells[-1].outputs[0].text == "2\n" and kernels() == []
    nbformat.write(nbformat.v4.new_notebook(cells=[*cells, nbformat.v4.new_code_cell("1 / 0")]), str(path))
    with pytest.raises(NotebookError, match="ZeroDivisionError"):
        run_notebook(path)
    assert kernels() == []


# --- executed on a lake -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipeline_lake(spark, served_pipeline):
    """The session's served pipeline (both source slices plus planted bad rows, small models),
    read by path: (overrides for a notebook's own JVM, a Lake on this test session)."""
    # The kernel's own JVM: no Derby metastore (the tests and the SQL server hold theirs), a small driver.
    overrides = [*served_pipeline.overrides, "lake.metastore_server=null", "lake.metastore_dir=null"]
    return overrides, Lake(spark, load_conf("local", overrides, ROOT / "conf"))


@pytest.fixture(scope="module")
def execute(pipeline_lake, tmp_path_factory):
    """Run a notebook in a kernel of its own on the pipeline's lake; the executed copy is kept
    (with outputs) in a temporary folder. Returns (text printed or shown, number of images)."""
    overrides, _ = pipeline_lake
    kernel_overrides = [*overrides, "spark.driver_memory=1g"]
    out = tmp_path_factory.mktemp("executed")

    def run(name, **parameters):
        nb = run_notebook(NOTEBOOKS / f"{name}.ipynb", {"overrides": kernel_overrides, **parameters},
                          output=out / f"{name}.ipynb", timeout=600)
        outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        text = "\n".join(o.text for o in outputs if o.output_type == "stream")
        images = sum("image/png" in o.get("data", {}) for o in outputs)
        return text, images

    return run


def lines(text, prefix):
    return [line for line in text.splitlines() if line.startswith(prefix)]


@on_the_lake
def test_lake_quality_notebook(pipeline_lake, execute):
    _, lake = pipeline_lake
    text, images = execute("01_lake_quality")
    assert images == 4  # rows per table, quarantine by reason, data quality, funnel

    for name in (T.SILVER_EVENTS, T.SILVER_QUARANTINE, T.OPS_JOB_RUNS, T.SYNTHETIC_BEHAVIOR, T.RECS_TOP_N):
        assert f"table {name}: version {lake.version(name)}, {lake.read(name).count()} rows" in text
    assert len(lines(text, "table ")) == 23  # every table the pipeline writes

    assert sorted(lines(text, "quarantined ")) == sorted(
        f"quarantined retailrocket/events/{reason}: {rows}" for reason, rows in PLANTED_QUARANTINE.items())
    accepted = lake.read(T.SILVER_EVENTS).where("source = 'retailrocket'").count()
    duplicates = 3000 - accepted  # the slice's rows that are not accepted are duplicates (test_pipeline)
    assert (f"data quality retailrocket/events: input 3004, accepted {accepted}, return 0, duplicate {duplicates}, "
            f"quarantined 4, reconciles True") in text
    assert len(lines(text, "data quality ")) == 4 and "reconciles False" not in text

    reached = (lake.read(T.SILVER_EVENTS).groupBy("source", "event_type")
               .agg(F.countDistinct("session_id").alias("n")).collect())
    counts = {(r["source"], r["event_type"]): r["n"] for r in reached}
    for source in ("retailrocket", "rees46"):
        steps = ", ".join(f"{stage} {counts.get((source, stage), 0)}" for stage in ("view", "cart", "purchase"))
        assert f"funnel {source} sessions: {steps}" in text


@on_the_lake
def test_synthetic_vs_real_notebook(pipeline_lake, execute):
    _, lake = pipeline_lake
    text, images = execute("02_synthetic_vs_real", bins=10, top=5, sample_rows=200)
    assert images == 4  # continuous and categorical distributions, scatter, scores
    synthetic = lake.read(T.SYNTHETIC_BEHAVIOR)
    [version] = [r["model_version"] for r in synthetic.select("model_version").distinct().collect()]
    assert (f"real sessions {lake.read(T.GOLD_BEHAVIOR).count()}, synthetic sessions {synthetic.count()}, "
            f"model version(s) {version}") in text
    quality = lake.read(T.SYNTHETIC_QUALITY).head()
    assert f"model {version}: gates passed True" in text
    for kind, score in (("quality", "quality_overall"), ("quality", "column_shapes"), ("privacy", "membership_auc"),
                        ("privacy", "exact_copy_share")):
        assert f"{kind} {score} {quality[score]:.3f}" in text


@on_the_lake
def test_recommendation_metrics_notebook(pipeline_lake, execute):
    _, lake = pipeline_lake
    text, images = execute("03_recommendation_metrics")
    assert images == 2  # metrics per model, coverage histogram
    metrics = lake.read(T.RECS_METRICS).collect()
    [version] = {r["model_version"] for r in metrics}
    k = metrics[0]["k"]
    served = sorted({r["model"] for r in metrics if r["served"]})
    assert f"model version {version}: test period, K={k}, served {', '.join(served)}" in text and len(served) == 1
    pooled = [r for r in metrics if r["evaluation_split"] == "test" and r["source"] == "all"]
    for row in pooled:
        assert (f"metrics {row['model']} {row['task']}: NDCG@{k} {row['ndcg_at_k']:.4f} [{row['ndcg_at_k_low']:.4f}, "
                f"{row['ndcg_at_k_high']:.4f}], {row['users']} users") in text
    assert len(lines(text, "metrics ")) == len(pooled) == 2 * 3   # recent, ease, sequence (END_TO_END_RECS); 2 tasks
    validation = [r for r in metrics if r["evaluation_split"] == "validation"]
    assert f"validation rows: {len(validation)} " in text

    [user] = re.findall(r"^user (\S+): ", text, re.MULTILINE)
    top = lake.read(T.RECS_TOP_N).where(F.col("user_id") == user).orderBy("rank").collect()
    assert lines(text, "recommended ") == [f"recommended {r['rank']}: {r['item_id']} (score {r['score']:.3f})" for r in top]
    assert len(top) == k

    [item] = re.findall(r"^item (\S+): (\d+) similar items", text, re.MULTILINE)
    neighbours = lake.read(T.RECS_SIMILAR_ITEMS).where(F.col("item_id") == item[0]).count()
    assert int(item[1]) == neighbours > 0

    items = lake.read(T.RECS_TOP_N).select("item_id").distinct().count()
    catalogue = pooled[0]["catalogue_items"]
    assert f"coverage: {items} of {catalogue} catalogue items ({items / catalogue:.1%}) recommended to " in text
