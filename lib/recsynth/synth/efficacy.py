"""ML efficacy: does a model trained on synthetic rows predict real rows as well as one trained
on real rows? Both are Spark MLlib pipelines evaluated on the same real holdout, so it runs on
whole tables.

Features must not reveal the target by construction: for `purchased`, `n_purchases > 0` and
`spend > 0` are the target itself, and a model using them scores AUC 1 on any table that keeps
that rule, real or synthetic, which says nothing about the rest of the data. The caller names
such columns in `exclude`; they are dropped from the features.

The default model is a lasso logistic regression (L1 weight `LASSO` on standardised features):
trained on a table whose target is noise, an unpenalised model still ranks rows along some
random direction, and on correlated features that can score anywhere between about 0.4 and 0.6
AUC. The lasso gives no weight to effects below the penalty, so such a table yields a constant
model, AUC 0.5, while real effects (standardised log-odds well above 0.02) survive. `model="gbt"`
fits gradient-boosted trees instead (no such guard).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.ml import Pipeline
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.frames import require_columns
from recsynth.synth.metrics import QualityError
from recsynth.synth.transformer import NULL

LABEL = "_label"
LASSO = 0.02  # L1 weight on standardised features: see the module doc


@dataclass(frozen=True)
class EfficacyScores:
    """Real-holdout scores of a classifier trained on synthetic rows and of one trained on real rows."""
    target: str
    features: list[str]
    excluded: list[str]
    model: str
    synthetic_auc: float
    synthetic_f1: float
    real_auc: float
    real_f1: float
    auc_ratio: float                                  # synthetic_auc / real_auc: ~1 is as useful as real data
    notes: list[str] = field(default_factory=list)    # why a score is a fallback (single class, ...)


def _labelled(frame: DataFrame, target: str, positive: str, continuous: list[str], categorical: list[str]) -> DataFrame:
    """Features typed for the pipeline and a 0/1 label; rows without a target are dropped. A null
    (or NaN) continuous value becomes 0 plus a `<c>__null` flag: no fitted imputer, so a column
    that is all null in one table cannot fail the fit."""
    label = F.expr(target)
    text = F.lower(label.cast("string"))
    numbers = [(c, F.col(c).cast("double")) for c in continuous]
    numbers = [(c, F.when(~F.isnan(x), x)) for c, x in numbers]
    return frame.filter(label.isNotNull()).select(
        *[F.coalesce(x, F.lit(0.0)).alias(c) for c, x in numbers],
        *[x.isNull().cast("double").alias(f"{c}__null") for c, x in numbers],
        *[F.coalesce(F.col(c).cast("string"), F.lit(NULL)).alias(c) for c in categorical],
        (text == F.lit(positive.lower())).cast("double").alias(LABEL))


def _pipeline(continuous: list[str], categorical: list[str], model: str, seed: int) -> Pipeline:
    stages, inputs = [], [name for c in continuous for name in (c, f"{c}__null")]
    if categorical:
        indexed = [f"{c}__index" for c in categorical]
        stages.append(StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=[f"{c}__onehot" for c in categorical], handleInvalid="keep"))
        inputs += [f"{c}__onehot" for c in categorical]
    stages.append(VectorAssembler(inputCols=inputs, outputCol="features", handleInvalid="keep"))
    if model == "logistic":
        stages.append(LogisticRegression(featuresCol="features", labelCol=LABEL, maxIter=50, regParam=LASSO,
                                         elasticNetParam=1.0))
    elif model == "gbt":
        stages.append(GBTClassifier(featuresCol="features", labelCol=LABEL, maxIter=30, maxDepth=4, seed=seed))
    else:
        raise QualityError(f"unknown efficacy model {model!r}: use 'logistic' or 'gbt'")
    return Pipeline(stages=stages)


def _f1(predictions: DataFrame) -> float:
    """F1 of the positive class, from one aggregation."""
    row = predictions.agg(
        F.sum(((F.col("prediction") == 1) & (F.col(LABEL) == 1)).cast("long")).alias("tp"),
        F.sum(((F.col("prediction") == 1) & (F.col(LABEL) == 0)).cast("long")).alias("fp"),
        F.sum(((F.col("prediction") == 0) & (F.col(LABEL) == 1)).cast("long")).alias("fn")).head()
    tp, fp, fn = (row[k] or 0 for k in ("tp", "fp", "fn"))
    return 2.0 * tp / (2 * tp + fp + fn) if tp else 0.0


def _fit_and_score(train: DataFrame, test: DataFrame, test_positive_share: float, name: str, continuous, categorical,
                   model: str, seed: int, notes: list[str]) -> tuple[float, float]:
    """(AUC, F1) on `test` of a model fitted on `train`. A training set with one class cannot be
    fitted: it is scored as the constant predictor it implies (AUC 0.5; F1 of always guessing that class)."""
    classes = [r[LABEL] for r in train.groupBy(LABEL).count().collect()]
    if len(classes) < 2:
        only = "positive class only" if classes == [1.0] else "negative class only" if classes else "no rows"
        notes.append(f"{name} training data has {only}: scored as a constant predictor")
        p = test_positive_share
        return 0.5, (2 * p / (1 + p) if classes == [1.0] else 0.0)
    predictions = _pipeline(continuous, categorical, model, seed).fit(train).transform(test).select(
        LABEL, "rawPrediction", "prediction").cache()
    try:
        evaluator = BinaryClassificationEvaluator(rawPredictionCol="rawPrediction", labelCol=LABEL, metricName="areaUnderROC")
        auc = evaluator.evaluate(predictions)
        return float(auc), _f1(predictions)
    finally:
        predictions.unpersist()


def ml_efficacy(real_train: DataFrame, real_test: DataFrame, synthetic: DataFrame, target: str,
                continuous: list[str], categorical: list[str], *, exclude: tuple[str, ...] | list[str] = (),
                positive: str = "true", model: str = "logistic", seed: int = 0) -> EfficacyScores:
    """Train on `synthetic` and on `real_train`, evaluate both on `real_test` (rows neither saw).

    `target` is a binary column or a Spark SQL expression (`spend >= 1000`): a row is positive when
    its value, as a lower-case string, equals `positive` (booleans and 'True'/'False' strings both
    work). Features are `continuous` + `categorical`
    minus the target and `exclude` (columns that give the target away, see the module doc)."""
    dropped = {target, *exclude}
    continuous = [c for c in continuous if c not in dropped]
    categorical = [c for c in categorical if c not in dropped]
    if not continuous and not categorical:
        raise QualityError(f"no feature left for predicting {target} once {sorted(dropped)} are excluded")
    for label, frame in (("real train", real_train), ("real test", real_test), ("synthetic", synthetic)):
        require_columns(frame, f"the {label} table", [*([target] if target.isidentifier() else []), *continuous,
                                                       *categorical], QualityError)
    notes: list[str] = []
    test = _labelled(real_test, target, positive, continuous, categorical).cache()
    try:
        test_counts = {r[LABEL]: r["count"] for r in test.groupBy(LABEL).count().collect()}
        if len(test_counts) < 2:
            notes.append(f"the real test rows have {len(test_counts)} class(es) of {target}: AUC and F1 are undefined")
            return EfficacyScores(target, [*continuous, *categorical], sorted(set(exclude)), model,
                                  math.nan, math.nan, math.nan, math.nan, math.nan, notes)
        share = test_counts[1.0] / sum(test_counts.values())
        args = (continuous, categorical, model, seed, notes)
        synthetic_auc, synthetic_f1 = _fit_and_score(_labelled(synthetic, target, positive, continuous, categorical), test,
                                                     share, "synthetic", *args)
        real_auc, real_f1 = _fit_and_score(_labelled(real_train, target, positive, continuous, categorical), test,
                                           share, "real", *args)
    finally:
        test.unpersist()
    ratio = synthetic_auc / real_auc if real_auc else math.nan
    return EfficacyScores(target, [*continuous, *categorical], sorted(set(exclude)), model, synthetic_auc, synthetic_f1,
                          real_auc, real_f1, ratio, notes)
