"""Rules that every synthetic row obeys by construction, and the checks that prove it.

- Derived columns (`synth.derived`, {column: Spark SQL}) are computed after sampling, in order.
  An expression that does not name its own column replaces it (`n_events: n_views + n_carts +
  n_purchases`), and the GAN never learns that column; one that does name it repairs the
  model's value (`spend: IF(n_purchases > 0, spend, 0)`), and the column is learned as usual.
- Constraints (`synth.constraints`, Spark SQL conditions) are checked on both tables: their
  validity is a quality score, and a synthetic table where one fails in any row is refused.
- Learned-as columns (`synth.learned_as`, {helper: Spark SQL over the real row}) are what the
  GAN learns in place of a column that a derived expression then rebuilds from them, the way SDV
  reparameterises a constrained column: `items_share: n_items / n_events` is learned, and
  `n_items: ROUND(items_share * n_events)` is derived. A relation the GAN would have to learn
  between two long-tailed counts (real r = 0.96, learned: 0.01) becomes one bounded column, and
  the relation holds by construction. Helpers are never published.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType
from pyspark.sql.utils import AnalysisException, ParseException

from recsynth.errors import RecsynthError
from recsynth.synth.expressions import names_itself


class ConstraintError(RecsynthError):
    """A derived column or constraint that cannot be evaluated on the table."""


def learned_columns(columns: list[str], derived: dict[str, str]) -> list[str]:
    """The columns the GAN learns: all but those a derived expression replaces."""
    return [c for c in columns if c not in derived or names_itself(c, derived[c])]


def with_helpers(frame: DataFrame, learned_as: dict[str, str]) -> DataFrame:
    """`frame` (real rows) with every learned-as helper column computed."""
    return frame.withColumns({name: F.expr(expression).cast("double") for name, expression in learned_as.items()})


def apply_derived(frame: DataFrame, derived: dict[str, str], types: StructType) -> DataFrame:
    """`frame` with every derived column computed (in order), cast to its real type."""
    wanted = {f.name: f.dataType for f in types.fields}
    for column, expression in derived.items():
        frame = frame.withColumn(column, F.expr(expression).cast(wanted[column]))
    return frame


def _satisfied(condition: str):
    """1 where the condition holds, 0 where it fails or is unknown (null)."""
    return F.coalesce(F.expr(condition), F.lit(False)).cast("int")


def validity(frame: DataFrame, constraints: list[str]) -> dict[str, float]:
    """Per constraint, the share of rows that satisfy it (1.0 on an empty table); one pass."""
    if not constraints:
        return {}
    row = frame.agg(F.count(F.lit(1)).alias("_rows"),
                    *[F.sum(_satisfied(c)).alias(f"_c{k}") for k, c in enumerate(constraints)]).head()
    return {c: (row[f"_c{k}"] / row["_rows"]) if row["_rows"] else 1.0 for k, c in enumerate(constraints)}


def conditions_of(synth) -> dict[str, str]:
    """Every Spark SQL condition of a synth conf, by the conf key that holds it."""
    target = synth.quality.efficacy_target  # a column (checked by the efficacy test) or a condition
    return {**{f"synth.constraints[{k}]": c for k, c in enumerate(synth.constraints)},
            **{f"synth.quality.rare_shares.{name}.where": r.where for name, r in synth.quality.rare_shares.items()},
            **{f"synth.calibration.by[{k}]": c for k, c in enumerate(synth.calibration.by)},
            **({} if target.isidentifier() else {"synth.quality.efficacy_target": target})}


def check(table: DataFrame, derived: dict[str, str], conditions: dict[str, str], key: str = "synth.derived") -> None:
    """Fail fast, naming the conf key, when an expression does not parse or resolve on `table`
    (Spark analyses a projection without running it). `derived`: column -> expression, under
    conf `key`; `conditions`: conf key -> condition."""
    entries = [(f"{key}.{c}", lambda e=e: F.expr(e)) for c, e in derived.items()]
    entries += [(f"{key} ({c})", lambda c=c: _satisfied(c)) for key, c in conditions.items()]
    for where, column in entries:
        try:
            table.select(column().alias("_checked")).schema
        except (AnalysisException, ParseException) as error:
            raise ConstraintError(f"{where} cannot be evaluated on the table: {str(error).splitlines()[0]}") from None
