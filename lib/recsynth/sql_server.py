"""The Spark Thrift (JDBC/ODBC) server on the lake: SQL tools (beeline, PyHive, BI tools over
JDBC) query recs.top_n, synthetic.quality or ops.job_runs while jobs keep writing.

It runs as its own Spark application with the jobs' settings (Delta, warehouse, metastore), so
it needs a metastore that several JVMs share: `lake.metastore_server`, not embedded Derby.
"""
from __future__ import annotations

from recsynth.config import Conf
from recsynth.errors import ConfigError
from recsynth.services import Service, spark_home

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def thrift_server(conf: Conf, spark_arguments: list[str]) -> Service:
    if not conf.lake.metastore_dir:
        raise ConfigError("the SQL server needs a Hive metastore: set lake.metastore_dir (and lake.metastore_server)")
    if not conf.lake.metastore_server:
        raise ConfigError("the SQL server and the jobs must share the metastore: set lake.metastore_server "
                          "(e.g. 127.0.0.1:1527); embedded Derby admits one JVM at a time")
    host, port = conf.sql_server.host, conf.sql_server.port
    command = [str(spark_home() / "bin" / "spark-submit"), "--class", THRIFT_SERVER_CLASS,
               "--name", "recsynth SQL server", *spark_arguments, "spark-internal",
               "--hiveconf", f"hive.server2.thrift.bind.host={host}", "--hiveconf", f"hive.server2.thrift.port={port}"]
    return Service("sql-server", host, port, command, start_timeout_s=300)
