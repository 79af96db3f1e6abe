"""MLflow tracking for training jobs: parameters, per-epoch losses, the training data's Delta
version, quality and privacy scores, and report artifacts. Locally the store is a SQLite file
under <lake.root>/mlflow (browse it with `mlflow ui --backend-store-uri <that uri>`); on
Databricks it is the workspace. Only aggregates are logged: never a row, id or raw value."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from recsynth.config import Conf
from recsynth.errors import ConfigError
from recsynth.paths import resolve_uri

log = logging.getLogger(__name__)

CHAMPION = "champion"   # the registered-model alias of the served recommender


def tracking_uri(conf: Conf) -> str:
    if conf.tracking.uri:
        return conf.tracking.uri
    root = resolve_uri(conf.lake.root)
    if root.startswith("file:"):
        root = urlparse(root).path
    if not root.startswith("/"):
        raise ConfigError(f"tracking.uri: lake.root {root} is not a local folder; set tracking.uri "
                          "(an MLflow server, a database URI, or 'databricks')")
    return f"sqlite:///{root}/mlflow/mlflow.db"


def artifact_root(conf: Conf) -> str | None:
    if conf.tracking.artifact_root:
        return resolve_uri(conf.tracking.artifact_root)
    return None if conf.tracking.uri else f"{resolve_uri(conf.lake.root)}/mlflow/artifacts"


class Tracker:
    """One MLflow run, addressed by id (safe to use from a progress thread); with tracking
    disabled (`run_id` None) every call does nothing."""

    def __init__(self, client=None, run_id: str | None = None):
        self._client, self.run_id = client, run_id

    def params(self, values: dict) -> None:
        if self.run_id:
            for key, value in values.items():
                self._client.log_param(self.run_id, key, value)

    def tags(self, values: dict) -> None:
        if self.run_id:
            for key, value in values.items():
                self._client.set_tag(self.run_id, key, str(value))

    def metrics(self, values: dict, step: int | None = None) -> None:
        if self.run_id:
            for key, value in values.items():
                if value is not None:
                    self._client.log_metric(self.run_id, key, float(value), step=step or 0)

    def register_champion(self, model_name: str, source: str, tags: dict) -> str | None:
        """Register `source` (a saved model's folder) as a new version of the registered model
        `model_name`, created if needed, tagged with `tags`, and point its `champion` alias at
        it. Returns the version (None with tracking off)."""
        if not self.run_id:
            return None
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_registered_model(model_name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = self._client.create_model_version(model_name, source, run_id=self.run_id,
                                                    tags={key: str(value) for key, value in tags.items()})
        self._client.set_registered_model_alias(model_name, CHAMPION, version.version)
        return version.version

    def text(self, content: str, artifact_file: str) -> None:
        """Store `content` (e.g. an HTML report) as an artifact of the run."""
        if self.run_id:
            self._client.log_text(self.run_id, content, artifact_file)


@contextmanager
def tracked_run(conf: Conf, job: str, run_id: str) -> Iterator[Tracker]:
    """An MLflow run named after the job run; it ends FAILED if the block raises."""
    if not conf.tracking.enabled:
        yield Tracker()
        return
    from mlflow.tracking import MlflowClient

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    uri = tracking_uri(conf)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(conf.tracking.experiment)
    experiment_id = (experiment.experiment_id if experiment else
                     client.create_experiment(conf.tracking.experiment, artifact_location=artifact_root(conf)))
    run = client.create_run(experiment_id, run_name=f"{job}-{run_id}", tags={"recsynth.job": job, "recsynth.run_id": run_id})
    log.debug("MLflow run %s in experiment %r at %s", run.info.run_id, conf.tracking.experiment, uri)
    try:
        yield Tracker(client, run.info.run_id)
    except BaseException:
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")
