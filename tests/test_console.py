"""A quiet console, a full log: recsynth's own lines on the console, everything else in the log
file (recsynth.logs), a summary that reads whole at 80 columns (recsynth.reporting.summary), and the
test helper that tells recsynth's console lines from any other (tests/console.py)."""
from __future__ import annotations

import io
import logging
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
from rich.console import Console

from conftest import ROOT
from console import foreign_console_lines
from recsynth import logs
from recsynth.config import load_conf
from recsynth.reporting import summary

# Lines of other programs, as they reached the console before recsynth.logs (one of each kind).
FOREIGN = [
    "26/12/02 07:19:35 WARN InstanceBuilder: Failed to load implementation from:dev.ludovic.netlib.blas.JNIBLAS",
    "2026-12-02 07:17:42.360477: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.",
    "[0]<stderr>:/x/petastorm/fs_utils.py:88: FutureWarning: pyarrow.localfs is deprecated as of 2.0.0",
    "  self._filesystem = pyarrow.localfs",
    "[1]<stdout>:Cache cleanup complete.",
    "WARNING:tensorflow:5 out of the last 5 calls to <function <lambda>> triggered tf.function retracing.",
    "Exception while sending command.",
    "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2856)",
]
NAMES = ["two_tower_augmented", "cooccurrence", "popularity", "synthetic.encoded_behavior", "recs.similar_items",
         "unknown_event_type", "synthesize-20261202T071638-68bdac", "recommend-20261202T072004-3e2360"]


@pytest.fixture
def console_text(tmp_path):
    """A Console 80 columns wide, with recsynth's logging set up on it; yields (text so far, conf)."""
    buffer = io.StringIO()
    conf = load_conf("local", [f"ops.service_dir={tmp_path}"], ROOT / "conf")
    logs.configure(conf, Console(file=buffer, width=80))
    yield buffer.getvalue, conf
    logs.reset()


METRICS = [{"model": model, "task": task, "source": "all", "k": 10, "users": 56666 if task == "next" else 3012,
            "evaluation_split": "test", "training_data_version": 3, "served": model == "recent",
            "model_version": "recommend-20261202T072004-3e2360", "ndcg_at_k": 0.2, "ndcg_at_k_low": 0.1234,
            "ndcg_at_k_high": 0.2345, "catalogue_coverage": 0.5}
           for model in ("als", "cooccurrence", "ease", "itemknn", "popularity", "recent", "two_tower",
                         "two_tower_augmented") for task in ("next", "discovery")]


def _summary_sections() -> list:
    records = [SimpleNamespace(job="clean", status="succeeded", seconds=81.4, rows_in=4669, rows_out=3000,
                               message="accepted {'category_tree': 1669, 'events': 3000}, quarantined 12, duplicates "
                                       "removed 0; report /a/very/long/path/of/a/lake/models/gan/synthesize-20261202T0716"
                                       "38-68bdac/report.html", output_versions={})]
    quality = {"model_version": "synthesize-20261202T071638-68bdac", "quality_overall": 0.657, "efficacy_auc_ratio": 1.54,
               "dcr_ratio": float("inf"), "membership_auc": 0.49}
    quarantine = [{"source": "retailrocket", "entity": "events", "reason": "unknown_event_type", "rows": 12}]
    return [summary.jobs_section(records),
            summary.tables_section([("synthetic.encoded_behavior", 0, 1988), ("recs.similar_items", 12, 7011)]),
            summary.section("Quarantined rows by reason (silver.quarantine)",
                            summary.quarantine_table(quarantine, None, **summary.COMPACT)),
            summary.synthetic_section(quality), summary.recs_section(METRICS)]


def test_the_summary_reads_whole_at_80_columns():
    console = Console(file=io.StringIO(), width=80)
    for part in _summary_sections():
        console.print(part)
    pointers = ["Full log: /a/path/that/is/long/enough/to/need/more/than/one/line/at/eighty/columns/recsynth.log",
                'Try: recsynth sql "SELECT rank, item_id FROM recs.top_n ORDER BY rank LIMIT 10 -- a long query to try"']
    summary.print_pointers(console, pointers)
    text = console.file.getvalue()
    lines = text.splitlines()
    assert all(name in text for name in NAMES), text
    assert "…" not in text, text
    assert all(pointer in lines[k] for k, pointer in zip((-2, -1), pointers))  # one line each, copied whole
    assert max(len(line) for line in lines[:-2]) <= 80
    assert foreign_console_lines(text) == []


def test_the_summary_of_a_run_on_the_synthetic_clickstream_names_its_own_tables():
    """Under lake.clickstream=synthetic the recommenders' section and the queries to try point at
    synthetic_gold.* and synthetic_recs.*, where that run wrote (Lake.located's mapping)."""
    synthetic = {"gold.splits": "synthetic_gold.splits", "gold.behavior": "synthetic_gold.behavior",
                 "recs.metrics": "synthetic_recs.metrics", "recs.top_n": "synthetic_recs.top_n"}.__getitem__
    console = Console(file=io.StringIO(), width=200)
    console.print(summary.recs_section(METRICS, synthetic))
    text = " ".join(console.file.getvalue().split())
    assert "(synthetic_recs.metrics)" in text and "on synthetic_gold.splits v3" in text
    queries = summary.queries_to_try(synthetic, "recommend-1")
    assert [q.count("synthetic_recs.top_n") for q in queries] == [2, 0]
    assert "FROM synthetic_gold.behavior" in queries[1]
    assert summary.queries_to_try(lambda name: name, None) == [q.replace("synthetic_", "") for q in queries[1:]]


def test_records_of_recsynth_reach_the_console_and_others_only_the_file(console_text):
    text, conf = console_text
    logging.getLogger("recsynth.tasks.ingest").info("ingest: %s", "a message long enough to wrap " * 5)
    logging.getLogger("recsynth.tasks.ingest").info("a second record in the same second")
    logging.getLogger("recsynth.tasks.ingest").debug("detail for whoever debugs")
    try:
        raise ValueError("planted")
    except ValueError:
        logging.getLogger("recsynth.runtime.runs").exception("clean failed")
    logging.getLogger("py4j.clientserver").warning("a py4j warning")
    logging.getLogger("petastorm").error("a petastorm error")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("pyarrow.localfs is deprecated", FutureWarning, stacklevel=1)

    console = text()
    assert "a second record" in console and "ValueError: planted" in console
    assert "ERROR: clean failed" in console and "INFO" not in console  # only a warning or error names its level
    assert console.splitlines()[0].rstrip().endswith("ingest: " + "a message long enough to wrap " * 2 + "a")  # 71 columns
    assert "detail" not in console and "py4j" not in console and "petastorm" not in console and "pyarrow" not in console
    assert foreign_console_lines(console) == []
    file = logs.log_path(conf).read_text()
    for expected in ("a message long enough", "detail for whoever debugs", "ValueError: planted", "py4j.clientserver: a py4j warning",
                     "petastorm: a petastorm error", "FutureWarning: pyarrow.localfs is deprecated"):
        assert expected in file


def test_foreign_lines_are_found_among_recsynths(console_text):
    text, _ = console_text
    log = logging.getLogger("recsynth.tasks.recommend")
    log.warning("no user to evaluate: nobody in the held-out period had a view/cart/purchase event")
    log.info("a second record in the same second")
    console = Console(file=io.StringIO(), width=80)
    for part in _summary_sections():
        console.print(part)
    own = [*text().splitlines(), *console.file.getvalue().splitlines(), "failed: job clean failed (run clean-1)",
           "full log: /x/recsynth.log"]
    mixed = list(own)
    for k, line in enumerate(FOREIGN):
        mixed.insert(3 * k + 1, line)
    assert foreign_console_lines("\n".join(own)) == []
    assert foreign_console_lines("\n".join(mixed)) == FOREIGN


TAKE_OVER = """
import os, subprocess, sys
from rich.console import Console
from recsynth import logs
from recsynth.config import load_conf

logs.configure(load_conf("local", [f"ops.service_dir={sys.argv[1]}"], sys.argv[2]), Console(stderr=True))
subprocess.run(["sh", "-c", "echo a JVM line; echo a Python worker line >&2"], check=True)
os.write(2, b"a C library line\\n")
print("the summary"); print("a failure", file=sys.stderr)
logs.reset()
print("after the command")
"""


def test_while_a_command_runs_what_is_written_below_python_goes_to_the_log_file(tmp_path):
    done = subprocess.run([sys.executable, "-c", TAKE_OVER, str(tmp_path), str(ROOT / "conf")], capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout == "the summary\nafter the command\n" and done.stderr == "a failure\n"
    assert (tmp_path / logs.LOG_FILE).read_text() == "a JVM line\na Python worker line\na C library line\n"


def test_in_process_callers_keep_their_output(console_text, capfd):
    subprocess.run(["sh", "-c", "echo a JVM line >&2"], check=True)
    assert "a JVM line" in capfd.readouterr().err
