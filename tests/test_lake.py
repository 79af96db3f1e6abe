"""The lake on real Delta tables: writes by logical name, versions, SQL registration, rollback."""
import pytest
from pyspark.testing import assertDataFrameEqual

from recsynth.errors import LakeError

pytestmark = pytest.mark.spark

SCHEMA = "k string, v bigint, part string"


def frame(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def test_delta_classes_come_from_the_real_jars(spark):
    # spark.jars load into Spark's own class loader (not the JVM's system one), which py4j uses
    extension = spark._jvm.io.delta.sql.DeltaSparkSessionExtension().getClass()
    jar = extension.getProtectionDomain().getCodeSource().getLocation().toString()
    assert extension.getName() == "io.delta.sql.DeltaSparkSessionExtension"
    assert jar.endswith("delta-spark_2.12-3.3.2.jar")


def test_overwrite_append_merge_and_time_travel(spark, lake):
    name = "silver.things"
    assert lake.version(name) is None
    lake.overwrite(name, frame(spark, [("a", 1, "x"), ("b", 2, "y")]))
    lake.append(name, frame(spark, [("c", 3, "x")]))
    lake.merge(name, frame(spark, [("a", 10, "x"), ("d", 4, "y")]), keys=["k"])
    assert lake.version(name) == 2
    assertDataFrameEqual(lake.read(name), frame(spark, [("a", 10, "x"), ("b", 2, "y"), ("c", 3, "x"), ("d", 4, "y")]))
    assertDataFrameEqual(lake.read(name, version=0), frame(spark, [("a", 1, "x"), ("b", 2, "y")]))
    assert [r["operation"] for r in lake.history(name).orderBy("version").collect()] == ["WRITE", "WRITE", "MERGE"]


def test_replace_where_overwrites_one_partition_only(spark, lake):
    name = "gold.parts"
    lake.overwrite(name, frame(spark, [("a", 1, "x"), ("b", 2, "y")]))
    lake.overwrite(name, frame(spark, [("c", 3, "x")]), replace_where="part = 'x'")
    assertDataFrameEqual(lake.read(name), frame(spark, [("b", 2, "y"), ("c", 3, "x")]))


def test_tables_are_queryable_by_name_in_sql(spark, lake):
    lake.overwrite("ops.sample", frame(spark, [("a", 1, "x")]))
    assert spark.sql("SELECT sum(v) AS total FROM ops.sample").head()["total"] == 1
    # a table moved to another lake root is re-registered there
    lake.root = lake.root + "_moved"
    lake._registered.clear()
    lake.overwrite("ops.sample", frame(spark, [("a", 5, "x")]))
    assert spark.sql("SELECT sum(v) AS total FROM ops.sample").head()["total"] == 5


def test_failed_block_restores_every_table(spark, lake):
    lake.overwrite("silver.kept", frame(spark, [("a", 1, "x")]))
    with pytest.raises(RuntimeError, match="boom"):
        with lake.all_or_nothing():
            lake.append("silver.kept", frame(spark, [("b", 2, "x")]))
            lake.overwrite("silver.brand_new", frame(spark, [("z", 9, "x")]))
            raise RuntimeError("boom")
    assertDataFrameEqual(lake.read("silver.kept"), frame(spark, [("a", 1, "x")]))
    assert not lake.exists("silver.brand_new")
    assert not spark.catalog.tableExists("silver.brand_new")


def test_bad_names_and_missing_tables_are_clear(lake):
    with pytest.raises(LakeError, match="expected <schema>.<table>"):
        lake.path("events")
    with pytest.raises(LakeError, match="does not exist yet"):
        lake.read("gold.nothing_here")
