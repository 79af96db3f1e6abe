"""Build the SparkSession for local mode, a standalone cluster (spark-submit) or Databricks."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from recsynth import metastore
from recsynth.config import Conf
from recsynth.errors import ConfigError
from recsynth.paths import resolve_uri

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties")


def delta_jars(jars_dir: str) -> list[str]:
    """The Delta jars fetched by scripts/setup.sh; a clear error when set-up has not run."""
    folder = Path(resolve_uri(jars_dir))
    jars = sorted(str(p) for p in folder.glob("delta-*.jar"))
    if not any("delta-spark" in j for j in jars) or not any("delta-storage" in j for j in jars):
        raise ConfigError(
            f"spark.delta_jars_dir: no delta-spark and delta-storage jars in {folder}; "
            "run scripts/setup.sh (it fetches them from Maven Central) or set spark.delta_jars_dir=null "
            "to resolve spark.delta_packages with Ivy"
        )
    return jars


def session_settings(conf: Conf) -> dict[str, str]:
    """Every Spark setting recsynth needs, as one dict (also printed for spark-sql / spark-submit)."""
    java_options = [f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES}", *([conf.spark.driver_java_options] if
                                                                         conf.spark.driver_java_options else [])]
    settings = {
        "spark.app.name": conf.spark.app_name,
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.session.timeZone": "UTC",
        # Unparseable time stamps must become null (and go to quarantine), not raise.
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
        "spark.sql.shuffle.partitions": str(conf.spark.shuffle_partitions),
        "spark.driver.memory": conf.spark.driver_memory,
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    if conf.spark.delta_snapshot_partitions:
        settings["spark.databricks.delta.snapshotPartitions"] = str(conf.spark.delta_snapshot_partitions)
    if conf.lake.metastore_dir:
        settings.update(metastore.session_settings(conf))
        if not conf.lake.metastore_server:
            java_options.append(f"-Dderby.system.home={resolve_uri(conf.lake.metastore_dir)}")
    driver_classpath = metastore.driver_jars(conf) if conf.lake.metastore_dir else []
    if conf.spark.delta_jars_dir:
        jars = delta_jars(conf.spark.delta_jars_dir)
        settings["spark.jars"] = ",".join(jars)  # shipped to the executors
        # and on the driver's own class path: the Thrift server opens sessions on threads whose
        # class loader does not see spark.jars (DeltaCatalog not found when beeline connects)
        driver_classpath += jars
    elif conf.spark.delta_packages:
        settings["spark.jars.packages"] = conf.spark.delta_packages
    if driver_classpath:
        settings["spark.driver.extraClassPath"] = ":".join(driver_classpath)
    settings["spark.driver.extraJavaOptions"] = " ".join(java_options)
    settings.update(conf.spark.extra)
    return settings


def submit_arguments(conf: Conf) -> list[str]:
    """The conf's master and settings as spark-submit / spark-sql arguments."""
    arguments = ["--master", conf.spark.master] if conf.spark.master else []
    for key, value in session_settings(conf).items():
        arguments += ["--conf", f"{key}={value}"]
    return arguments


def get_spark(conf: Conf):
    """Return the active session (spark-submit, Databricks) or build one from conf."""
    from pyspark.sql import SparkSession

    metastore.ensure_server(conf)
    builder = SparkSession.builder
    if conf.spark.master:
        builder = builder.master(conf.spark.master)
    if (conf.spark.master or "").startswith("local"):
        # Python workers (Horovod ranks, pandas functions) must use this interpreter and its
        # packages; PySpark takes the workers' interpreter from this variable (default python3).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in session_settings(conf).items():
        builder = builder.config(key, value)
    if conf.lake.metastore_dir:
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s, master %s", spark.version, spark.sparkContext.master)
    return spark
