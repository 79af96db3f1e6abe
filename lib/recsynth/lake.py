"""The lake: every Delta table by logical name (`silver.events`), and every read and write of one.

Tables live at <lake.root>/<schema>/<table> and are registered in the Spark catalog under
their schema, so `SELECT * FROM silver.events` works from spark-sql on the same warehouse.
Writes inside `Lake.all_or_nothing()` are undone (RESTORE, or drop for new tables) if the
block raises, so a failed job leaves every table it touched at its previous version.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Iterator

from recsynth.config import Conf
from recsynth.errors import LakeError
from recsynth import faults
from recsynth.paths import resolve_uri

log = logging.getLogger(__name__)

SCHEMAS = ("bronze", "silver", "gold", "ops", "synthetic", "recs")
# lake.clickstream = synthetic: the gold and recommend jobs read the synthetic clickstream where they
# read the real one, and write into schemas of their own, so that nothing real is overwritten. A
# synthetic clickstream has no returns: synthetic.returns is never written, so gold finds none.
SYNTHETIC_TABLES = {"silver.events": "synthetic.events", "silver.returns": "synthetic.returns"}
SYNTHETIC_SCHEMAS = {"gold": "synthetic_gold", "recs": "synthetic_recs"}
COMMIT_FILE = re.compile(r"(\d{20})\.json")  # _delta_log/00000000000000000012.json: the commit of version 12
# Storage failures found in a write's error text (the JVM's or the OS's), and what they mean.
STORAGE_FAULTS = (
    ("No space left on device", "the disk is full (No space left on device)"),
    ("Disk quota exceeded", "the disk quota is used up (Disk quota exceeded)"),
    ("Permission denied", "permission denied (the job's user cannot write there)"),
    ("AccessDeniedException", "permission denied (the job's user cannot write there)"),
    ("Mkdirs failed", "a folder could not be created there (no permission to write there, or a file in the way)"),
    ("DELTA_CANNOT_CREATE_LOG_PATH", "its folder could not be created (no permission to write there, or a file in the way)"),
    ("Read-only file system", "the file system is read-only"),
)


@dataclass
class _Undo:
    """Versions of the tables touched inside one all_or_nothing block (None: table was new)."""

    before: dict[str, int | None] = field(default_factory=dict)


class Lake:
    def __init__(self, spark, conf: Conf):
        self.spark = spark
        self.root = resolve_uri(conf.lake.root).rstrip("/")
        self.catalog = conf.lake.catalog
        self.clickstream = conf.lake.clickstream
        self._undo: _Undo | None = None
        self._registered: set[str] = set()

    # --- names -----------------------------------------------------------------------------
    @staticmethod
    def _split(name: str) -> tuple[str, str]:
        schema, _, table = name.partition(".")
        if schema not in SCHEMAS or not table.isidentifier():
            raise LakeError(f"table name {name!r}: expected <schema>.<table> with schema in {list(SCHEMAS)}")
        return schema, table

    def located(self, name: str) -> str:
        """<schema>.<table> where the logical table `name` lives under this lake's clickstream:
        itself for the real one; for the synthetic one, gold.* and recs.* in their synthetic_*
        schemas and the real clickstream's tables replaced by the synthetic clickstream's."""
        schema, table = self._split(name)
        if self.clickstream == "synthetic":
            return SYNTHETIC_TABLES.get(name) or f"{SYNTHETIC_SCHEMAS.get(schema, schema)}.{table}"
        return name

    def path(self, name: str) -> str:
        return f"{self.root}/{self.located(name).replace('.', '/')}"

    def qualified(self, name: str) -> str:
        located = self.located(name)
        return f"{self.catalog}.{located}" if self.catalog else located

    # --- reads -----------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(self.spark, self.path(name))

    def read(self, name: str, version: int | None = None):
        if not self.exists(name):
            raise LakeError(f"table {name} does not exist yet at {self.path(name)}; run the job that writes it first")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(name))

    def _log(self, name: str):
        """(file system, _delta_log folder) of a table, through Spark's own Hadoop file system."""
        folder = self.spark._jvm.org.apache.hadoop.fs.Path(f"{self.path(name)}/_delta_log")
        return folder.getFileSystem(self.spark._jsc.hadoopConfiguration()), folder

    def version(self, name: str) -> int | None:
        """The current version of a table, or None when it does not exist: the newest commit file
        in its _delta_log, listed without a Spark job. Versions are contiguous and log clean-up
        never removes the newest commit, so this is Delta's version."""
        fs, folder = self._log(name)
        if not fs.exists(folder):
            return None
        names = (status.getPath().getName() for status in fs.listStatus(folder))
        return max((int(match[1]) for match in map(COMMIT_FILE.fullmatch, names) if match), default=None)

    def commit_info(self, name: str, version: int) -> dict | None:
        """The commitInfo of one commit of a table (operation, timestamp in epoch ms,
        operationParameters, userMetadata), read from its _delta_log without a Spark job; None when
        the log no longer keeps that commit file (clean-up removes old ones)."""
        fs, folder = self._log(name)
        path = self.spark._jvm.org.apache.hadoop.fs.Path(folder, f"{version:020d}.json")
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            text = self.spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
        actions = [json.loads(line) for line in text.splitlines() if line.strip()]
        return next((action["commitInfo"] for action in actions if "commitInfo" in action), {})

    def commit_infos(self, name: str) -> Iterator[dict]:
        """The commitInfo of each commit of a table, newest first, as far back as the log still
        keeps commit files."""
        latest = self.version(name)
        for version in range(-1 if latest is None else latest, -1, -1):
            info = self.commit_info(name, version)
            if info is None:
                return
            yield info

    def versions(self, names) -> dict[str, int | None]:
        return {name: self.version(name) for name in names}

    def history(self, name: str, limit: int | None = None):
        """The table's commits, newest first; `limit` reads only the newest ones from the log."""
        from delta.tables import DeltaTable

        if not self.exists(name):
            raise LakeError(f"table {name} does not exist yet")
        table = DeltaTable.forPath(self.spark, self.path(name))
        return table.history() if limit is None else table.history(limit)

    # --- writes ----------------------------------------------------------------------------
    def overwrite(self, name: str, df, replace_where: str | None = None) -> None:
        """Replace the whole table, or only the rows matching `replace_where`."""
        self._before_write(name)
        writer = faults.while_writing(name, df).write.format("delta").mode("overwrite")
        if replace_where:
            writer = writer.option("replaceWhere", replace_where)
        else:
            writer = writer.option("overwriteSchema", "true")
        with self._writing(name):
            writer.save(self.path(name))
        faults.after_commit(name)
        self._register(name)

    def append(self, name: str, df, add_columns: bool = False, note: str | None = None) -> None:
        """Append rows; `add_columns` lets a newer writer add columns (older rows read null); `note`
        is kept in the commit's userMetadata (see `commit_infos`)."""
        self._before_write(name)
        writer = faults.while_writing(name, df).write.format("delta").mode("append")
        if add_columns:
            writer = writer.option("mergeSchema", "true")
        if note is not None:
            writer = writer.option("userMetadata", note)
        with self._writing(name):
            writer.save(self.path(name))
        faults.after_commit(name)
        self._register(name)

    def merge(self, name: str, df, keys: list[str]) -> None:
        """Upsert `df` on `keys`: matching rows are updated, new rows inserted."""
        if not self.exists(name):
            self.overwrite(name, df)
            return
        from delta.tables import DeltaTable

        self._before_write(name)
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        with self._writing(name):
            (
                DeltaTable.forPath(self.spark, self.path(name)).alias("t")
                .merge(df.alias("s"), condition)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        faults.after_commit(name)
        self._register(name)

    def delete(self, name: str, condition) -> None:
        """Delete the rows matching `condition` (a Column or SQL text); older versions keep them
        for time travel until VACUUM."""
        from delta.tables import DeltaTable

        self._before_write(name)
        with self._writing(name):
            DeltaTable.forPath(self.spark, self.path(name)).delete(condition)
        faults.after_commit(name)

    def restore(self, name: str, version: int) -> None:
        from delta.tables import DeltaTable

        with self._writing(name):
            DeltaTable.forPath(self.spark, self.path(name)).restoreToVersion(version)

    def drop(self, name: str) -> None:
        """Remove a table from the catalog and delete its files."""
        self.spark.sql(f"DROP TABLE IF EXISTS {self.qualified(name)}")
        self._registered.discard(name)
        jvm = self.spark._jvm
        hadoop_path = jvm.org.apache.hadoop.fs.Path(self.path(name))
        fs = hadoop_path.getFileSystem(self.spark._jsc.hadoopConfiguration())
        fs.delete(hadoop_path, True)

    @contextlib.contextmanager
    def _writing(self, name: str):
        """Turn a storage failure the user can fix (disk full, no permission) into one clear LakeError;
        Delta's commit is atomic, so the table is still at its previous version."""
        try:
            yield
        except Exception as err:
            text = str(err)
            cause = next((meaning for marker, meaning in STORAGE_FAULTS if marker in text), None)
            if cause is None:
                raise
            log.debug("writing %s failed", name, exc_info=True)  # the JVM's whole story, for --set ops.log_level=DEBUG
            raise LakeError(f"cannot write {name} at {self.path(name)}: {cause}. Fix the storage and run the job "
                            "again") from err

    # --- all-or-nothing --------------------------------------------------------------------
    @contextlib.contextmanager
    def all_or_nothing(self):
        """Undo every write made inside the block if it raises."""
        if self._undo is not None:
            raise LakeError("all_or_nothing blocks do not nest")
        self._undo = _Undo()
        try:
            yield
        except BaseException:
            self._roll_back(self._undo.before)
            raise
        finally:
            self._undo = None

    def _before_write(self, name: str) -> None:
        if self.clickstream == "synthetic" and name in SYNTHETIC_TABLES:
            raise LakeError(f"{name} is read from {self.located(name)} under lake.clickstream=synthetic, and is not "
                            "written there: only the gold and recommend jobs run on the synthetic clickstream")
        if self._undo is not None and name not in self._undo.before:
            self._undo.before[name] = self.version(name)

    def _roll_back(self, before: dict[str, int | None]) -> None:
        for name, version in before.items():
            try:
                if version is None:
                    if self.exists(name):
                        self.drop(name)
                        log.warning("rolled back %s: removed (it did not exist before)", name)
                elif self.version(name) != version:
                    self.restore(name, version)
                    log.warning("rolled back %s to version %s", name, version)
            except Exception:  # keep restoring the others; report this one
                log.exception("could not roll back %s to version %s", name, version)

    # --- catalog ---------------------------------------------------------------------------
    def _register(self, name: str) -> None:
        """Make the table visible to SQL under <schema>.<table> (idempotent)."""
        if name in self._registered:
            return
        schema, _ = self.located(name).split(".")
        prefix = f"{self.catalog}." if self.catalog else ""
        qualified = self.qualified(name)
        self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {prefix}{schema}")
        if self.spark.catalog.tableExists(qualified):
            registered_at = self._registered_location(qualified)
            if registered_at.rstrip("/").removeprefix("file:") != self.path(name).removeprefix("file:"):
                log.info("%s moved from %s to %s: re-registering", qualified, registered_at, self.path(name))
                self.spark.sql(f"DROP TABLE {qualified}")  # external table: its files stay
        self.spark.sql(f"CREATE TABLE IF NOT EXISTS {qualified} USING DELTA LOCATION '{self.path(name)}'")
        self._registered.add(name)

    def _registered_location(self, qualified: str) -> str:
        """Where the catalog says a table lives, from its catalog entry (DESCRIBE DETAIL would also
        count the table's files: seconds per table)."""
        rows = self.spark.sql(f"DESCRIBE TABLE EXTENDED {qualified}").collect()
        return next(row["data_type"] for row in rows if row["col_name"] == "Location")

    def register_all(self, names) -> None:
        for name in names:
            if self.exists(name):
                self._register(name)

    def register_both_clickstreams(self, names) -> None:
        """Register `names` as they exist under either clickstream (gold.* and synthetic_gold.*,
        recs.* and synthetic_recs.*), so SQL sees every table whichever lake.clickstream is set."""
        self.register_all(names)
        self.other_clickstream().register_all(names)

    def other_clickstream(self) -> "Lake":
        """This lake with the other lake.clickstream (real <-> synthetic): the same root and
        catalog, the tables located as that clickstream's jobs write them."""
        other = copy.copy(self)
        other.clickstream, other._registered = ("real" if self.clickstream == "synthetic" else "synthetic"), set()
        return other
