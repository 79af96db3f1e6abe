"""A Spark standalone cluster on this machine's loopback address, from the installed pyspark
(no system Spark): one master and N workers, for spark-submit runs as on a real cluster."""
from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from recsynth.errors import ServiceError
from recsynth.services import Service, spark_home

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


@dataclass(frozen=True)
class ClusterSpec:
    host: str = "127.0.0.1"
    port: int = 7077
    ui_port: int = 8080
    workers: int = 1
    cores: int = 2
    memory: str = "4g"

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"


def services(spec: ClusterSpec, work_dir: Path) -> list[Service]:
    """The master first, then each worker on the next free-by-convention ports (port+1+i, ui_port+1+i)."""
    spark_class = str(spark_home() / "bin" / "spark-class")
    master = Service("spark-master", spec.host, spec.port,
                     [spark_class, MASTER_CLASS, "--host", spec.host, "--port", str(spec.port), "--webui-port", str(spec.ui_port)])
    workers = [
        Service(f"spark-worker-{i}", spec.host, spec.port + 1 + i,
                [spark_class, WORKER_CLASS, "--host", spec.host, "--port", str(spec.port + 1 + i),
                 "--webui-port", str(spec.ui_port + 1 + i), "--cores", str(spec.cores), "--memory", spec.memory,
                 "--work-dir", str(work_dir / f"spark-worker-{i}"), spec.master_url])
        for i in range(spec.workers)
    ]
    return [master, *workers]


def alive_workers(spec: ClusterSpec) -> int:
    with urllib.request.urlopen(f"http://{spec.host}:{spec.ui_port}/json/", timeout=5) as answer:
        return int(json.load(answer).get("aliveworkers", 0))


def wait_for_workers(spec: ClusterSpec, timeout_s: float = 120.0) -> None:
    """A worker listens before it has registered; submissions need it registered."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if alive_workers(spec) >= spec.workers:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"{spec.workers} worker(s) did not register with {spec.master_url} within {timeout_s:.0f} s; "
                               f"see the master's page http://{spec.host}:{spec.ui_port} and the logs in ops.service_dir")
        time.sleep(1)
