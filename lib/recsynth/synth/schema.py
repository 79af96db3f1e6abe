"""Give synthetic columns the types of the real table they imitate."""
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, IntegralType, StructType


def match_types(synthetic: DataFrame, real: StructType, columns: list[str]) -> DataFrame:
    """Round counts back to integers, turn 'True'/'False' back into booleans, cast the rest."""
    types = {f.name: f.dataType for f in real.fields}
    converted = []
    for name in synthetic.columns:
        column = F.col(name)
        if name in columns and name in types:
            wanted = types[name]
            if isinstance(wanted, IntegralType):
                column = F.round(column.cast("double")).cast(wanted)
            elif isinstance(wanted, BooleanType):
                column = F.lower(column.cast("string")) == F.lit("true")
            else:
                column = column.cast(wanted)
        converted.append(column.alias(name))
    return synthetic.select(*converted)
