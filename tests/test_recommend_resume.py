"""A `recsynth recommend` process killed (SIGKILL: no clean-up runs) in the middle of Horovod
training: the next run resumes from the last checkpoint and completes as a clean run would."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import RECSYNTH, ROOT, SMALL_RECS, gold_lake_copy, model_job_overrides, recsynth, settled_epoch

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.horovod, pytest.mark.timeout(1800)]

EPOCHS = 30   # the rerun trains what the kill left: enough to show the resume
# small batches, so an epoch is many steps (a fraction of a second, not 0.06 s): the kill lands
# mid-training even when the polling test process is slowed down by a busy machine


def checkpointed_epoch(lake_root: Path) -> int:
    epochs = [json.loads(p.read_text())["epoch"] for p in lake_root.glob("checkpoints/sequence/*/latest.json")]
    return max(epochs, default=0)


def test_a_killed_run_resumes_from_its_checkpoint(spark, tmp_path, etl_reference):
    overrides = model_job_overrides(
        tmp_path, *SMALL_RECS, f"lake.metastore_dir={tmp_path}/metastore",
        # what is resumed is the sequence model's training: no tuning, and of the baselines only the served one
        "recs.validation_split=null", "recs.serve=recent", "recs.baselines=[recent]",
        "recs.sequence={max_length: 10, embedding_dim: 8, blocks: 1, heads: 2, dropout: 0.0, batch_size: 4,"
        f" learning_rate: 0.01, max_epochs: {EPOCHS}, patience: 1, early_stopping_users: 100, negatives: 50,"
        " full_softmax_max_items: 100, horizon: 1, logq_correction: true}")
    conf, lake = gold_lake_copy(spark, etl_reference, overrides)
    lake_root = tmp_path / "lake"
    options = [f"--set={o}" for o in overrides]

    with (tmp_path / "killed.log").open("w") as log_file:
        killed = subprocess.Popen([RECSYNTH, *options, "recommend"], cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    deadline = time.monotonic() + 900
    while checkpointed_epoch(lake_root) < 2:
        assert killed.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 15 minutes"
        time.sleep(0.2)
    os.killpg(killed.pid, signal.SIGKILL)  # the driver, its JVM and the ranks' Python workers
    killed.wait()
    (folder,) = lake_root.glob("checkpoints/sequence/*")
    at_kill = settled_epoch(str(folder))
    assert 2 <= at_kill < EPOCHS

    rerun = recsynth(options, "recommend")
    resumed = [int(word) for line in rerun.stderr.splitlines() if "resumed from the checkpoint of epoch" in line
               for word in line.split() if word.isdigit()]
    assert resumed and resumed[0] >= at_kill, rerun.stderr[-3000:]

    runs = lake.read("ops.job_runs").where("job = 'recommend'").collect()
    assert [r["status"] for r in runs] == ["succeeded"]  # the killed run never finished, so left no row
    scored = lake.read("recs.metrics").select("model").distinct().collect()
    assert sorted(r["model"] for r in scored) == ["recent", "sequence"]  # recs.baselines: only what it lists
    # recent has no item-to-item scores, nothing was validated and EASE did not run: the sequence model's neighbours
    assert lake.read("recs.similar_items").count() > 0
    users = lake.read("gold.splits").select("user_id").distinct().count()
    top_n = lake.read("recs.top_n")
    assert top_n.select("user_id").distinct().count() == users
    assert top_n.select("model_version").distinct().count() == 1
    assert checkpointed_epoch(lake_root) == 0  # cleared once the model was saved
