"""Raw-source adapters: list a source's files with a content fingerprint, read them as strings,
and map their columns onto the canonical schema named in conf (no per-source code)."""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.errors import AnalysisException

from recsynth import tables as T
from recsynth.config import RawFileConf
from recsynth.errors import SourceError
from recsynth.paths import resolve_uri

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"


def list_files(spark: SparkSession, raw: RawFileConf) -> DataFrame:
    """path, size, modified_at and sha256 of every file matching the source's path glob.

    The fingerprint is computed on executors (binaryFile), so a re-run recognises files it
    has already ingested even when they were copied or touched."""
    try:
        listing = spark.read.format("binaryFile").load(resolve_uri(raw.path))
    except AnalysisException as err:
        raise SourceError(f"source path {raw.path!r} matches no file ({str(err).splitlines()[0]})") from None
    return _fingerprinted(listing)


def fingerprints(spark: SparkSession, paths: list[str]) -> dict[str, str]:
    """path -> sha256 of the content now, for those of `paths` (as list_files names them) that
    still exist: a removed file is absent. Reads only these files."""
    jvm, hadoop = spark._jvm, spark._jsc.hadoopConfiguration()

    def exists(path: str) -> bool:
        hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
        return hadoop_path.getFileSystem(hadoop).exists(hadoop_path)

    present = [path for path in paths if exists(path)]
    if not present:
        return {}
    try:
        rows = _fingerprinted(spark.read.format("binaryFile").load(present)).select("path", "fingerprint").collect()
    except AnalysisException:  # removed between the check and the read
        raise SourceError(f"source files were removed while this run was reading them: one of {present}") from None
    return {row["path"]: row["fingerprint"] for row in rows}


def _fingerprinted(listing: DataFrame) -> DataFrame:
    return listing.select(
        F.col("path"),
        F.col("length").alias("size"),
        F.col("modificationTime").alias("modified_at"),
        F.sha2(F.col("content"), 256).alias("fingerprint"),
    )


def read_raw(spark: SparkSession, raw: RawFileConf, paths: list[str]) -> DataFrame:
    """Read files as all-string columns, keeping malformed lines (as `_corrupt_record`) and the file name.

    Files may disagree on their columns (a source adds or drops one): CSV files are read in
    groups of the same header and the groups united by column name, a column missing from some
    files being null there (a required one then sends those rows to quarantine). Only a column
    named in conf that no file has is an error: that is a conf mistake, not drift."""
    if raw.format == "parquet":
        frame = spark.read.option("mergeSchema", "true").parquet(*paths)
        frame = frame.select(*[F.col(c).cast("string").alias(c) for c in frame.columns],
                             F.lit(None).cast("string").alias(CORRUPT), F.col("_metadata.file_path").alias(T.FILE))
    elif raw.format == "csv":
        groups: dict[tuple[str, ...], list[str]] = {}
        for path in paths:
            groups.setdefault(tuple(_source_columns(spark, raw, [path])), []).append(path)
        if len(groups) > 1:
            log.warning("%s: the files have %d different headers (%s); reading each group by its own header",
                        raw.path, len(groups), "; ".join(",".join(h) for h in groups))
        frames = [_read_text(spark, raw, list(header), group) for header, group in groups.items()]
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other, allowMissingColumns=True)
    else:
        frame = _read_text(spark, raw, _source_columns(spark, raw, paths), paths)
    absent = {canonical: column for canonical, column in raw.columns.items() if column not in frame.columns}
    required = sorted(column for canonical, column in absent.items() if canonical in raw.required_columns)
    if required:
        raise SourceError(f"source {raw.path!r}: column(s) {required} named in conf are not in the files (found {frame.columns})")
    if absent:
        log.warning("%s: optional column(s) %s are in no file of this batch; they are null", raw.path, sorted(absent.values()))
    return frame.withColumns({column: F.lit(None).cast("string") for column in absent.values()})


def _read_text(spark: SparkSession, raw: RawFileConf, header: list[str], paths: list[str]) -> DataFrame:
    schema = StructType([StructField(c, StringType()) for c in header] + [StructField(CORRUPT, StringType())])
    reader = spark.read.schema(schema).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
    if raw.format == "csv":
        reader = reader.option("header", "true").option("enforceSchema", "false")
    for key, value in raw.options.items():
        reader = reader.option(key, value)
    return reader.format(raw.format).load(paths).withColumn(T.FILE, F.col("_metadata.file_path"))


def _source_columns(spark: SparkSession, raw: RawFileConf, paths: list[str]) -> list[str]:
    """The source's own column names (CSV header or JSON keys), read from the files themselves."""
    reader = spark.read.format(raw.format)
    if raw.format == "csv":
        reader = reader.option("header", "true")
    for key, value in raw.options.items():
        reader = reader.option(key, value)
    return [c for c in reader.load(paths).columns if c != CORRUPT]


def to_canonical(raw_frame: DataFrame, columns: dict[str, str], canonical: tuple[str, ...], source: str) -> DataFrame:
    """Rename mapped source columns to canonical names (strings; unmapped ones null) and keep
    the whole raw record as JSON (or the malformed line itself) for quarantine and lineage."""
    source_columns = [c for c in raw_frame.columns if c not in (CORRUPT, T.FILE)]
    raw_record = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*[F.col(f"`{c}`") for c in source_columns])))
    return raw_frame.select(
        F.lit(source).alias(T.SOURCE),
        *[
            (F.col(f"`{columns[name]}`") if name in columns else F.lit(None)).cast("string").alias(name)
            for name in canonical
        ],
        raw_record.alias(T.RAW),
        F.col(CORRUPT).isNotNull().alias(T.MALFORMED),
        F.col(T.FILE),
    )
