"""The Hive metastore behind the SQL names (gold.behavior, recs.top_n): where it lives and how a
Spark session reaches it.

Embedded Derby (lake.metastore_server null) admits one JVM at a time: fine for one job, but a
job and the SQL server (or two jobs) cannot share it. With `lake.metastore_server` set, the same
database is served by a Derby network server, as a cluster's shared metastore service would be,
and every session connects to it as a client. A loopback server is started on first use.
"""
from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from recsynth.config import Conf
from recsynth.errors import ConfigError, ServiceError
from recsynth.paths import resolve_uri
from recsynth.services import Service, java, listening, spark_home, start

log = logging.getLogger(__name__)

DERBY_VERSION = "10.14.2.0"  # the embedded Derby that pyspark 3.5.3 ships; scripts/setup.sh fetches its network jars
CLIENT_DRIVER = "org.apache.derby.jdbc.ClientDriver"


def server_address(conf: Conf) -> tuple[str, int] | None:
    if not conf.lake.metastore_server:
        return None
    host, _, port = conf.lake.metastore_server.rpartition(":")
    return host, int(port)


def _jar(conf: Conf, artifact: str) -> str:
    if not conf.spark.delta_jars_dir:
        raise ConfigError("lake.metastore_server needs spark.delta_jars_dir: the folder where scripts/setup.sh puts "
                          f"{artifact}-{DERBY_VERSION}.jar")
    jar = Path(resolve_uri(conf.spark.delta_jars_dir)) / f"{artifact}-{DERBY_VERSION}.jar"
    if not jar.is_file():
        raise ConfigError(f"{jar} is missing: run scripts/setup.sh (it fetches Derby's network jars from Maven Central)")
    return str(jar)


def session_settings(conf: Conf) -> dict[str, str]:
    """Spark settings that point the session's Hive client at this conf's metastore."""
    folder = resolve_uri(conf.lake.metastore_dir)
    settings = {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": resolve_uri(conf.lake.root),
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }
    address = server_address(conf)
    if address is None:
        settings["spark.hadoop.javax.jdo.option.ConnectionURL"] = f"jdbc:derby:;databaseName={folder}/metastore_db;create=true"
    else:
        host, port = address
        settings.update({
            "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby://{host}:{port}/{folder}/metastore_db;create=true",
            "spark.hadoop.javax.jdo.option.ConnectionDriverName": CLIENT_DRIVER,
        })
    return settings


def driver_jars(conf: Conf) -> list[str]:
    """Jars the driver JVM needs on its own class path: DriverManager does not see spark.jars."""
    return [_jar(conf, "derbyclient")] if server_address(conf) else []


def server(conf: Conf) -> Service:
    host, port = server_address(conf)
    derby_home = Path(resolve_uri(conf.ops.service_dir))
    classpath = f"{spark_home() / 'jars' / f'derby-{DERBY_VERSION}.jar'}:{_jar(conf, 'derbynet')}"
    command = [java(), f"-Dderby.system.home={derby_home}", "-cp", classpath,
               "org.apache.derby.drda.NetworkServerControl", "start", "-h", host, "-p", str(port), "-noSecurityManager"]
    return Service("metastore", host, port, command, start_timeout_s=60)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def ensure_server(conf: Conf) -> None:
    """Start the loopback metastore server if it is configured and not answering yet."""
    address = server_address(conf)
    if address is None or listening(*address):
        return
    host, port = address
    if not _loopback(host):
        raise ServiceError(f"lake.metastore_server {host}:{port} does not answer; start the metastore server there "
                           "(recsynth only starts one on this machine's loopback address)")
    start(server(conf), Path(resolve_uri(conf.ops.service_dir)))
    log.info("metastore server on %s:%s serves %s (stop it with: recsynth metastore stop)",
             host, port, resolve_uri(conf.lake.metastore_dir))
