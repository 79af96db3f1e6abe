"""Load and validate the YAML configuration: defaults, one environment overlay, overrides.

One typed, frozen schema. Any unknown key, missing value or wrong type stops the job
before Spark starts, with a message naming the file, the key and what was expected.
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
import re
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from recsynth.errors import ConfigError
from recsynth.synth.expressions import names_itself

ENVIRONMENTS = ("local", "standalone", "databricks")
ENV_VAR = "RECSYNTH_ENV"
CONF_DIR_VAR = "RECSYNTH_CONF_DIR"
CANONICAL_EVENT_TYPES = ("view", "cart", "purchase")
EVENT_COLUMNS = ("event_time", "user_id", "session_id", "item_id", "event_type", "price", "transaction_id", "quantity")
REQUIRED_EVENT_COLUMNS = ("event_time", "user_id", "item_id")   # and event_type, mapped or constant
CATALOG_COLUMNS = ("item_id", "category_id", "category_path", "brand", "price", "title", "description", "updated_at")
CATEGORY_COLUMNS = ("category_id", "parent_id")
# Sections no job's output depends on: where the lake and its metastore are, Spark tuning, MLflow,
# logging, locks and retries, the SQL server. Every job may read them; no job fingerprints them.
UNFINGERPRINTED = ("lake", "spark", "tracking", "ops", "sql_server")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeConf(Strict):
    root: str
    clickstream: Literal["real", "synthetic"] = "real"
    catalog: str | None = None
    metastore_dir: str | None = None
    metastore_server: str | None = None

    @field_validator("metastore_server")
    @classmethod
    def _host_and_port(cls, value):
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port of a Derby network server (e.g. 127.0.0.1:1527), got {value!r}")
        return value

    @model_validator(mode="after")
    def _server_needs_a_folder(self):
        if self.metastore_server and not self.metastore_dir:
            raise ValueError("metastore_server needs metastore_dir: the folder where the server keeps the metastore database")
        return self


class SqlServerConf(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=10000, gt=0, lt=65536)


class SparkConf(Strict):
    master: str | None = None
    app_name: str = "recsynth"
    shuffle_partitions: int = Field(ge=1)
    driver_memory: str = "4g"
    driver_java_options: str | None = None   # appended to recsynth's own JVM options of the driver
    delta_jars_dir: str | None = None
    delta_packages: str | None = None
    delta_snapshot_partitions: int | None = Field(default=None, ge=1)   # None: Delta's own default (50)
    extra: dict[str, str] = {}


class TimeConf(Strict):
    unit: Literal["epoch_ms", "epoch_s", "format"]
    format: str | None = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _format_given(self):
        if self.unit == "format" and not self.format:
            raise ValueError("time.unit 'format' needs time.format (a Spark datetime pattern)")
        return self


class RawFileConf(Strict):
    REQUIRED: ClassVar[tuple[str, ...]] = ()   # canonical columns every row needs
    path: str
    format: Literal["csv", "json", "parquet"] = "csv"
    options: dict[str, str] = {}
    columns: dict[str, str]

    @property
    def required_columns(self) -> tuple[str, ...]:
        """The canonical columns that must be in the files (a row without a value is quarantined)."""
        return self.REQUIRED


def _check_columns(columns: dict[str, str], allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(set(columns) - set(allowed))
    if unknown:
        raise ValueError(f"unknown canonical column(s) {unknown}; expected some of {list(allowed)}")
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"columns must map {missing} (canonical name: source column)")


def _compiled(pattern: str, key: str) -> str:
    """A regular expression that compiles (Python's re; Spark's Java regex reads the common subset alike)."""
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{key}: pattern {pattern!r} does not compile: {err}") from None
    return pattern


class ReturnsRule(Strict):
    """Which rows are returns (they go to silver.returns): those whose canonical `column` matches
    `pattern`, e.g. an invoice number starting with C."""
    column: str
    pattern: str

    @model_validator(mode="after")
    def _valid(self):
        if self.column not in EVENT_COLUMNS:
            raise ValueError(f"returns.column {self.column!r} is not a canonical event column; expected one of "
                             f"{list(EVENT_COLUMNS)}")
        _compiled(self.pattern, "returns.pattern")
        return self


class EventsSourceConf(RawFileConf):
    REQUIRED: ClassVar[tuple[str, ...]] = REQUIRED_EVENT_COLUMNS
    time: TimeConf
    event_types: dict[str, str] = {}        # source value: canonical type, for a mapped event_type column
    event_type: str | None = None           # or one canonical type for every row (an orders export: purchase)
    returns: ReturnsRule | None = None

    @property
    def required_columns(self) -> tuple[str, ...]:
        return self.REQUIRED + (("event_type",) if "event_type" in self.columns else ())

    @model_validator(mode="after")
    def _valid_mapping(self):
        _check_columns(self.columns, EVENT_COLUMNS, self.REQUIRED)
        if self.event_type is None and "event_type" not in self.columns:
            raise ValueError("events need an event type: map a column (columns.event_type and event_types) or set "
                             f"event_type to one of {list(CANONICAL_EVENT_TYPES)} for every row")
        if self.event_type is not None and ("event_type" in self.columns or self.event_types):
            raise ValueError("event_type (one type for every row) and a mapped event_type column "
                             "(columns.event_type, event_types) exclude each other; keep one")
        if self.event_type is not None and self.event_type not in CANONICAL_EVENT_TYPES:
            raise ValueError(f"event_type {self.event_type!r} is not canonical; expected one of {list(CANONICAL_EVENT_TYPES)}")
        if "event_type" in self.columns and not self.event_types:
            raise ValueError("a mapped event_type column needs event_types (source value: canonical type)")
        bad = sorted(set(self.event_types.values()) - set(CANONICAL_EVENT_TYPES))
        if bad:
            raise ValueError(f"event_types maps to {bad}; canonical types are {list(CANONICAL_EVENT_TYPES)}")
        if self.returns is not None and self.returns.column not in self.columns:
            raise ValueError(f"returns.column {self.returns.column!r} is not mapped in columns "
                             f"(mapped: {sorted(self.columns)})")
        return self


class CatalogSourceConf(RawFileConf):
    REQUIRED: ClassVar[tuple[str, ...]] = ("item_id",)
    category_path_separator: str = "/"

    @model_validator(mode="after")
    def _valid_mapping(self):
        _check_columns(self.columns, CATALOG_COLUMNS, self.REQUIRED)
        return self


class CategoryTreeConf(RawFileConf):
    REQUIRED: ClassVar[tuple[str, ...]] = CATEGORY_COLUMNS

    @model_validator(mode="after")
    def _valid_mapping(self):
        _check_columns(self.columns, CATEGORY_COLUMNS, self.REQUIRED)
        return self


class BotRules(Strict):
    max_events_per_minute: int = Field(ge=1)
    max_events_per_session: int = Field(ge=1)


class SourceCleanRules(Strict):
    """A source's own cleaning rules, where they differ from the clean section's."""
    bots: BotRules | bool = True        # true: clean.bots; false: no bot rule (an orders export); or own limits
    duplicates: Literal["event", "source_row"] = "event"
    # event: the same canonical fields again (exact), or the same user, item and type within
    #   clean.near_duplicate_seconds (near); source_row: a row equal in every source column, and only that


class SourceConf(Strict):
    enabled: bool = True
    id_format: Literal["integer", "string"] = "string"
    events: EventsSourceConf
    catalog: CatalogSourceConf | None = None
    category_tree: CategoryTreeConf | None = None
    not_a_product: list[str] = []       # item-id patterns of lines that are no product (postage, fees)
    clean: SourceCleanRules = SourceCleanRules()

    @field_validator("not_a_product")
    @classmethod
    def _patterns_compile(cls, patterns):
        return [_compiled(p, "not_a_product") for p in patterns]


class CleanConf(Strict):
    min_event_time: str
    max_future_minutes: int = Field(ge=0)
    near_duplicate_seconds: float = Field(ge=0)
    max_price: float = Field(gt=0)
    session_gap_minutes: float = Field(gt=0)
    bots: BotRules
    max_category_depth: int = Field(ge=1)


class SourceCutoffs(Strict):
    validation_start: str
    test_start: str


class SplitConf(Strict):
    mode: Literal["quantile", "absolute"]
    validation_fraction: float = Field(ge=0, lt=1)
    test_fraction: float = Field(gt=0, lt=1)
    cutoffs: dict[str, SourceCutoffs] = {}

    @model_validator(mode="after")
    def _fractions(self):
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must be below 1")
        return self


class GoldConf(Strict):
    event_weights: dict[Literal["view", "cart", "purchase"], float]
    # a purchase line weighs event_weights.purchase times: one (1), units (its quantity, net of
    # returns) or log_units (1 + ln quantity: 48 mugs weigh 4.9 purchases, not 48)
    purchase_quantity: Literal["one", "units", "log_units"] = "one"
    price_bands: list[float]
    splits: SplitConf

    @model_validator(mode="after")
    def _all_weights(self):
        missing = sorted(set(CANONICAL_EVENT_TYPES) - set(self.event_weights))
        if missing:
            raise ValueError(f"event_weights needs a weight for {missing}")
        if list(self.price_bands) != sorted(self.price_bands):
            raise ValueError("price_bands must be increasing")
        return self


class GanConf(Strict):
    embedding_dim: int = Field(ge=1)
    generator_dims: tuple[int, ...]
    discriminator_dims: tuple[int, ...]
    pac: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    gradient_penalty: float = Field(ge=0)
    patience: int = Field(default=5, ge=0)   # epochs without a better validation score before stopping; 0: all epochs

    @model_validator(mode="after")
    def _pac_divides_batch(self):
        if self.batch_size % self.pac:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of pac {self.pac}")
        return self


class PrivacyGates(Strict):
    max_excess_copy_share: float = Field(ge=0, le=1)
    min_copy_support: int = Field(default=5, ge=1)
    min_dcr_ratio: float = Field(ge=0)
    max_membership_auc: float = Field(ge=0, le=1)
    query_rows: int = Field(ge=100)


def _without_nulls(mapping: dict) -> dict:
    """A mapping minus the keys set to null: how an overlay removes an entry it inherits (mappings merge)."""
    return {key: value for key, value in mapping.items() if value is not None}


class RareShare(Strict):
    """A rare kind of row, by a Spark SQL condition: its share in the synthetic table over its
    share in the real one must lie `within` [low, high] (checked where the real share is
    strictly between 0 and 1)."""
    where: str = Field(min_length=1)
    within: tuple[float, float]

    @model_validator(mode="after")
    def _bounds(self):
        low, high = self.within
        if not 0 <= low <= 1 <= high:
            raise ValueError(f"within must be [low, high] with low <= 1 <= high, got {list(self.within)}")
        return self


class QualityConf(Strict):
    min_overall: float = Field(ge=0, le=1)   # gate: mean of column shapes and pair trends
    min_range_coverage: float = Field(default=0.0, ge=0, le=1)     # gate: per continuous column
    min_category_coverage: float = Field(default=0.0, ge=0, le=1)  # gate: per categorical column
    rare_shares: dict[str, RareShare | None] = {}   # gate: named rare kinds of rows (an overlay's null removes one)
    efficacy_target: str                     # predicted in the ML-efficacy test: a binary column or a Spark SQL condition
    efficacy_positive: str = "true"
    efficacy_exclude: list[str]              # columns that give the target away (not features)

    @field_validator("rare_shares")
    @classmethod
    def _drop_removed(cls, value):
        return _without_nulls(value)


class CalibrationConf(Strict):
    by: list[str] = []                      # Spark SQL conditions: each combination keeps its share of the training
                                            # rows in the published table (lib/recsynth/synth/calibration.py)
    marginals: list[str | list[str]] = []   # columns (or combinations) whose training-row distribution the published
                                            # rows keep (numeric ones over `bins` real-quantile bins); a combination,
                                            # [source, n_carts], keeps each source's own distribution of carts
    bins: int = Field(default=20, ge=2)
    iterations: int = Field(default=3, ge=1)  # raking passes over the dimensions at most (fewer once every value is
                                            # within a row of its want)
    within: list[str] = []                  # categorical columns each value of which holds its own strata (each
                                            # source its own share of each combination of `by`)
    draw_order: list[str] = []              # columns the kept rows are drawn along, within each stratum
                                            # (`calibration.systematic_draw`): each run of their leading values keeps
                                            # its raked count to within a row
    oversample: float = Field(default=3.0, ge=1)  # rows generated per published row, so a stratum or value the GAN
                                            # writes below its real share can still be filled
    fill: list[str | list[str]] = []        # columns (or combinations): a value (or combination of values) the GAN
                                            # writes below its real share is topped up with rows generated under it;
                                            # categorical columns, or zero-inflated ones by their zero flag (0, nonzero)

    def fill_columns(self) -> list[list[str]]:
        """Each `fill` entry as the list of columns whose values are combined."""
        return _combinations(self.fill)

    def marginal_columns(self) -> list[list[str]]:
        """Each `marginals` entry as the list of columns whose values are combined."""
        return _combinations(self.marginals)


def _combinations(entries: list[str | list[str]]) -> list[list[str]]:
    return [[entry] if isinstance(entry, str) else list(entry) for entry in entries]


class SynthConf(Strict):
    continuous: list[str]
    categorical: list[str] = Field(min_length=1)
    max_categories: int = Field(ge=1)
    max_modes: int = Field(ge=1)
    mode_weight_threshold: float = Field(ge=0, lt=1)
    em_iterations: int = Field(ge=1)
    fit_sample_rows: int = Field(ge=1)
    stratify_by: str
    holdout_fraction: float = Field(gt=0, lt=1)
    validation_fraction: float = Field(default=0.1, ge=0, lt=1)  # people kept apart for early stopping (0: none)
    validation_rows: int = Field(default=5000, ge=100)            # of them, the rows rank 0 scores each epoch on
    num_proc: int = Field(ge=1)
    gan: GanConf
    rows_multiplier: float = Field(gt=0)
    sample_partitions: int = Field(ge=1)
    seed: int
    privacy: PrivacyGates
    quality: QualityConf
    checkpoint_every: int = Field(ge=1)
    kinds: dict[str, Literal["mixture", "zero_inflated", "discrete"]] = {}  # continuous column -> encoding
    discrete_max_values: int = Field(default=20, ge=1)          # inferred discrete: whole numbers, at most this many values
    zero_inflated_min_share: float = Field(default=0.5, gt=0, le=1)  # inferred zero-inflated: at least this share of 0s
    rows_where: str | None = None          # Spark SQL condition: the gold.behavior rows learned (null: all)
    periods: list[Literal["train", "validation", "test"]] | None = Field(default=None, min_length=1)  # the
                                           # gold.splits periods whose sessions are learned (null: recs.fit_splits)
    learned_as: dict[str, str | None] = {}  # helper -> Spark SQL over the real row: learned in place of the columns
                                           # `derived` rebuilds from it, never published (synth/constraints.py)
    derived: dict[str, str | None] = {}    # column -> Spark SQL, computed after sampling (lib/recsynth/synth/constraints.py);
                                           # an overlay's null removes a rule it inherits
    constraints: list[str] = []            # Spark SQL conditions every synthetic row must satisfy (a gate)
    calibration: CalibrationConf = CalibrationConf()

    @field_validator("derived", "learned_as")
    @classmethod
    def _drop_removed(cls, value):
        return _without_nulls(value)

    @model_validator(mode="after")
    def _columns_known(self):
        columns = [*self.continuous, *self.categorical]
        problems = []
        if unknown := [c for c in self.kinds if c not in [*self.continuous, *self.learned_as]]:
            problems.append(f"kinds names {unknown}, which are not continuous or learned_as columns")
        if unknown := [c for c in self.derived if c not in columns]:
            problems.append(f"derived names {unknown}, which are not continuous or categorical columns")
        if unknown := [c for entry in self.calibration.fill_columns() for c in entry
                       if c not in columns or self.kinds.get(c) == "mixture"]:
            problems.append(f"calibration.fill names {unknown}: each must be a categorical column, or a continuous one "
                            f"whose zeros or few values the GAN learns as a condition (kind zero_inflated or discrete)")
        if unknown := [c for entry in self.calibration.marginal_columns() for c in entry if c not in columns]:
            problems.append(f"calibration.marginals names {unknown}, which are not continuous or categorical columns")
        if unknown := [c for c in self.calibration.draw_order if c not in columns]:
            problems.append(f"calibration.draw_order names {unknown}, which are not continuous or categorical columns")
        if unknown := [c for c in self.calibration.within if c not in self.categorical]:
            problems.append(f"calibration.within names {unknown}, which are not categorical columns")
        if clash := [c for c in self.learned_as if c in columns]:
            problems.append(f"learned_as names {clash}, which are published columns: a helper needs a name of its own")
        if unused := [h for h in self.learned_as if not any(names_itself(h, e) for e in self.derived.values())]:
            problems.append(f"learned_as {unused}: no derived expression reads it, so it would be learned for nothing")
        if empty := [c for c, e in [*self.derived.items(), *self.learned_as.items()] if not e.strip()] + [c for c in self.constraints if not c.strip()]:
            problems.append(f"empty expression(s) for {empty}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TwoTowerConf(Strict):
    enabled: bool = False                # trained and reported beside the other models (off: retired on the evidence)
    embedding_dim: int = Field(ge=1)     # item-id embedding, shared by the user and item towers
    feature_dim: int = Field(ge=1)       # each item feature's embedding
    tower_dims: tuple[int, ...]          # hidden layers of each tower
    output_dim: int = Field(ge=1)        # length of user and item vectors
    batch_size: int = Field(ge=2)        # per rank; the in-batch negatives
    epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    temperature: float = Field(gt=0)
    logq_correction: bool = True

    @model_validator(mode="after")
    def _positive_layers(self):
        if any(d < 1 for d in self.tower_dims):
            raise ValueError(f"tower_dims must be integers >= 1, got {list(self.tower_dims)}")
        return self


class AttentionConf(Strict):
    """A self-attention network's settings: its heads split the embedding."""

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.embedding_dim % self.heads:
            raise ValueError(f"embedding_dim ({self.embedding_dim}) must be a multiple of heads ({self.heads})")
        return self


class SequenceConf(AttentionConf):
    max_length: int = Field(ge=1)              # events of the user's history the model reads
    embedding_dim: int = Field(ge=1)
    blocks: int = Field(ge=1)                  # self-attention blocks
    heads: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)
    batch_size: int = Field(ge=1)              # windows per rank and step
    learning_rate: float = Field(gt=0)
    max_epochs: int = Field(ge=1)              # the cap of early stopping (and the epochs without validation)
    patience: int = Field(ge=1)                # epochs without a better validation NDCG before stopping
    early_stopping_users: int = Field(ge=1)    # validation users rank 0 scores after each epoch
    negatives: int = Field(ge=1)               # sampled candidates per step (sampled softmax, logQ-corrected)
    full_softmax_max_items: int = Field(ge=1)  # a vocabulary this small: every item is a candidate
    horizon: int = Field(ge=1)                 # the following events whose items each position learns to predict
    logq_correction: bool = True


class AlsConf(Strict):
    rank: int = Field(ge=1)
    reg_param: float = Field(ge=0)
    alpha: float = Field(ge=0)           # confidence = 1 + alpha * weight
    max_iter: int = Field(ge=1)
    blocks: int | None = Field(default=None, ge=1)   # MLlib's user and item blocks; None: spark.shuffle_partitions


class CooccurrenceConf(Strict):
    max_items_per_user: int = Field(ge=1)   # bounds each user's self-join to this squared
    min_count: int = Field(ge=1)            # pairs seen by fewer users are dropped


class ItemKnnConf(Strict):
    max_neighbours: int = Field(ge=1)       # the closest items kept per item


class EaseConf(Strict):
    max_items: int = Field(ge=1)            # the items with the most fit users; the Gram matrix is this squared
    l2: list[float] = Field(min_length=1)   # regularisations tried on the validation period (the first without one)
    max_neighbours: int = Field(ge=1)       # the largest weights kept per item

    @model_validator(mode="after")
    def _positive(self):
        if any(value <= 0 for value in self.l2):
            raise ValueError(f"l2 values must be > 0, got {self.l2}")
        return self


TUNABLE_SECTIONS = {"cooccurrence": "CooccurrenceConf", "itemknn": "ItemKnnConf", "ease": "EaseConf",
                    "als": "AlsConf", "sequence": "SequenceConf"}
UNTUNABLE = {"ease": ("l2",), "sequence": ("max_epochs", "patience", "early_stopping_users")}  # searched already


def grid_settings(grid: dict[str, list]) -> list[dict]:
    """Every combination of a grid's values, the first value of each key first; [{}] for none."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


class SearchConf(Strict):
    """A wider hyper-parameter search on recs.validation_split: every combination of a model's
    grid is fitted there and scored on both tasks; each task keeps its best. Off: only EASE's l2
    and the sequence model's epochs are tuned."""
    enabled: bool = False
    grids: dict[Literal["cooccurrence", "itemknn", "ease", "als", "sequence"], dict[str, list] | None] = {}  # an
                                                                                     # overlay's null removes a grid

    @field_validator("grids")
    @classmethod
    def _grids_fit_their_sections(cls, grids):
        """Each key must be a searchable key of the model's section; each value is checked (and
        typed) as that key would be."""
        problems, typed = [], {}
        for model, grid in _without_nulls(grids).items():
            section, fixed = globals()[TUNABLE_SECTIONS[model]], UNTUNABLE.get(model, ())
            typed[model] = {}
            for key, values in grid.items():
                if key not in section.model_fields or key in fixed:
                    allowed = [k for k in section.model_fields if k not in fixed]
                    problems.append(f"grids.{model}.{key}: not a searchable key of recs.{model} (one of {allowed})")
                    continue
                if not values:
                    problems.append(f"grids.{model}.{key}: give at least one value")
                field, typed[model][key] = section.model_fields[key], []
                adapter = TypeAdapter(typing.Annotated[field.annotation, *field.metadata])
                for value in values:
                    try:
                        typed[model][key].append(adapter.validate_python(value))
                    except ValidationError as err:
                        problems.append(f"grids.{model}.{key}: {value!r}: {err.errors()[0]['msg']}")
        if problems:
            raise ValueError("; ".join(problems))
        return typed


class ExclusionConf(Strict):
    purchased: bool
    viewed: bool = False


class SimilarItemsConf(Strict):
    k: int = Field(ge=1)


class TopNConf(Strict):
    block_rows: int | None = Field(default=None, ge=1)   # users scored at once per task; null: sized to the catalogue
    keep_versions: int | None = Field(default=3, ge=1)   # model versions kept in recs.top_n / similar_items; null: all


class RecsConf(Strict):
    k: int = Field(ge=1)
    fit_splits: list[Literal["train", "validation", "test"]] = Field(min_length=1)
    evaluation_split: Literal["train", "validation", "test"]
    truth_event_types: list[Literal["view", "cart", "purchase"]] = Field(min_length=1)
    evaluate_users: Literal["warm", "all"]
    validation_split: Literal["train", "validation", "test"] | None = None
    exclude_purchased: bool | None = None
    exclude_viewed: bool
    exclusions_by_source: dict[str, ExclusionConf] = Field(default_factory=dict)
    serve: str = "auto"
    baselines: list[Literal["popularity", "recent", "cooccurrence", "itemknn", "ease", "als", "recent_ease"]] = \
        Field(default_factory=lambda: ["popularity", "recent", "cooccurrence", "itemknn", "ease", "als", "recent_ease"])
    bootstrap_replicates: int = Field(ge=1)
    history_items: int = Field(ge=1)
    categories: list[str] | None = None
    history_length: int = Field(ge=1)
    max_items: int = Field(ge=1)
    max_feature_values: int = Field(ge=1)
    num_proc: int = Field(ge=1)
    checkpoint_every: int = Field(ge=1)
    seed: int
    sequence: SequenceConf
    two_tower: TwoTowerConf
    als: AlsConf
    cooccurrence: CooccurrenceConf
    itemknn: ItemKnnConf
    ease: EaseConf
    search: SearchConf = SearchConf()
    similar_items: SimilarItemsConf
    top_n: TopNConf

    @field_validator("categories", mode="before")
    @classmethod
    def _category_ids_as_text(cls, value):
        """YAML reads `categories: [1509]` as a number; category ids are matched as text."""
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.evaluation_split in self.fit_splits:
            raise ValueError(f"evaluation_split {self.evaluation_split!r} is also in fit_splits "
                             f"{list(self.fit_splits)}: the models would be evaluated on what they learned")
        if self.validation_split is not None and (self.validation_split not in self.fit_splits
                                                  or len(set(self.fit_splits)) < 2):
            raise ValueError(f"validation_split {self.validation_split!r} must be one of fit_splits "
                             f"{list(self.fit_splits)} beside at least one other: the models are tuned on it after "
                             f"fitting on the others, then refitted on all of fit_splits")
        if self.categories is not None and (not self.categories or not all(c.strip() for c in self.categories)):
            raise ValueError("categories must be null (every category) or a non-empty list of non-empty "
                             "category ids or paths")
        models = [*self.baselines, "sequence", *(["two_tower"] if self.two_tower.enabled else [])]
        if self.serve != "auto" and self.serve not in models:
            raise ValueError(f"serve {self.serve!r} is not one of the models this conf runs: {models} (baselines, "
                             "the sequence model, and the two-tower when two_tower.enabled)")
        if len(set(self.baselines)) < len(self.baselines):
            raise ValueError(f"baselines {list(self.baselines)} names a model twice")
        if self.search.enabled and self.validation_split is None:
            raise ValueError("search.enabled tries settings on the validation period: set validation_split too")
        for model, grid in self.search.grids.items():  # keys that must agree with each other (heads | embedding_dim)
            section = getattr(self, model)
            for setting in grid_settings(grid):
                try:
                    type(section).model_validate({**section.model_dump(), **setting})
                except ValidationError as err:
                    raise ValueError(f"search.grids.{model}: the setting {setting}: {err.errors()[0]['msg']}") from None
        return self


class TrackingConf(Strict):
    enabled: bool
    uri: str | None             # None: a SQLite store under <lake.root>/mlflow (local lakes only)
    experiment: str = Field(min_length=1)
    artifact_root: str | None   # None: <lake.root>/mlflow/artifacts
    recommender_model: str = Field(default="recsynth_recommender", min_length=1)   # registered model of `champion`


class OpsConf(Strict):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    service_dir: str = "warehouse/services"
    lock_wait_s: float = Field(default=0, ge=0)
    training_attempts: int = Field(default=2, ge=1)


class SecretRef(Strict):
    scope: str
    key: str


class PseudonymConf(Strict):
    key_env: str = "RECSYNTH_PSEUDONYM_KEY"   # environment variable holding the key (checked first)
    secret: SecretRef | None = None           # Databricks secret scope holding the key
    key_file: str | None = None               # local runs: a key file, generated on first use (mode 600)


class PeoplePrivacyGates(Strict):
    """Gates on a synthetic clickstream judged per person (recsynth.synth.person_privacy)."""
    ngram_sizes: list[int] = Field(default=[3, 4, 5], min_length=1)
    min_ngram_support: int = Field(default=2, ge=2)       # a path fewer real people share is distinctive
    max_excess_ngram_share: float = Field(default=0.02, ge=0, le=1)
    max_membership_auc: float = Field(default=0.6, ge=0, le=1)
    query_people: int = Field(default=2000, ge=10)        # people per side the membership attacker scores

    @field_validator("ngram_sizes")
    @classmethod
    def _sizes(cls, value):
        if any(n < 2 or n > 10 for n in value) or len(set(value)) != len(value):
            raise ValueError("ngram_sizes must be distinct path lengths between 2 and 10")
        return sorted(value)


class ClickstreamSequenceConf(AttentionConf):
    """The sequence generator (`clickstream.generator: sequence`): the recommender's network
    (recsynth.rec.sequence) trained as a generator for a fixed number of epochs."""
    max_length: int = Field(default=30, ge=1)          # the person's most recent steps the network reads
    embedding_dim: int = Field(default=64, ge=1)
    blocks: int = Field(default=2, ge=1)
    heads: int = Field(default=2, ge=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    batch_size: int = Field(default=128, ge=1)         # windows per rank and step
    learning_rate: float = Field(default=0.002, gt=0)
    epochs: int = Field(default=10, ge=1)
    negatives: int = Field(default=1000, ge=1)         # sampled candidates per step (logQ-corrected)
    full_softmax_max_items: int = Field(default=20000, ge=1)
    own_items_exact: bool = True                       # sampled softmax: a person's own items are candidates too
    max_items: int = Field(default=20000, ge=1)        # the most-touched shared items the generator can write
    max_categories: int = Field(default=200, ge=1)     # top categories it is conditioned on (the others: "other")
    conditioned: bool = True                           # false: it ignores the planned contexts (to measure them)
    rare_items: bool = True                            # rare items' steps learnt as a stand-in per category, written as
                                                       # catalogue items outside the vocabulary (false: left out)
    temperature: float = Field(default=1.0, gt=0)      # items are drawn from softmax(scores / this): below 1 sharper
    min_p: float = Field(default=0.0, ge=0, lt=1)      # items below this x the likeliest item's probability are cut
    replay: float = Field(default=1.0, ge=0, le=1)     # share of steps within a session replaying a real move
    replay_taste: float = Field(default=0.0, ge=0)     # a replayed move's weight x the network's probability ** this
    same_item_shift: float = -2.0                      # added to the score of the item just written, within a session
    avoid_distinctive_paths: bool = True               # no written step completes a training person's rare 3-item path
    num_proc: int = Field(default=2, ge=1)             # Horovod ranks (Spark task slots)
    checkpoint_every: int = Field(default=1, ge=1)


class ClickstreamConf(Strict):
    """The synthetic clickstream (recsynth synthesize-events, evaluate-synthetic)."""
    enabled: bool = False                     # the pipeline runs both jobs too
    generator: Literal["markov", "independent", "sequence"] = "sequence"
    sessions: Literal["real", "gan"] = "gan"   # the plan's sessions: synthetic.behavior's rows, or real templates
    sequence: ClickstreamSequenceConf = ClickstreamSequenceConf()
    users_multiplier: float = Field(default=3.0, gt=0)    # synthetic users = training people x this
    max_session_events: int = Field(default=50, ge=1)     # longer sessions are cut (counted in the run's details)
    min_people: int = Field(default=2, ge=1)    # an item or move fewer real people took is never replayed
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)  # people the generator never sees: the privacy yardstick
    seed: int = 42
    draw_seed: int | None = None              # the plan's and the writing's draws (null: seed); a new one writes another
                                              # clickstream from the same people split and trained generator
    privacy: PeoplePrivacyGates = PeoplePrivacyGates()
    tstr_models: list[Literal["cooccurrence", "itemknn", "ease", "als"]] = Field(
        default=["cooccurrence", "itemknn", "ease", "als"], min_length=1)

    @property
    def draws(self) -> int:
        """The seed of the plan's and the writing's draws; the people split and the network keep `seed`."""
        return self.seed if self.draw_seed is None else self.draw_seed


class PrivacyConf(Strict):
    pseudonym: PseudonymConf = PseudonymConf()


class Conf(Strict):
    lake: LakeConf
    spark: SparkConf
    sources: dict[str, SourceConf]
    clean: CleanConf
    gold: GoldConf
    synth: SynthConf
    recs: RecsConf
    tracking: TrackingConf
    ops: OpsConf
    sql_server: SqlServerConf = SqlServerConf()
    privacy: PrivacyConf = PrivacyConf()
    clickstream: ClickstreamConf = ClickstreamConf()

    @model_validator(mode="after")
    def _cross_checks(self):
        for name in self.sources:
            if not name.isidentifier() or not name.islower():
                raise ValueError(f"source name {name!r} must be a lower-case identifier")
        if self.gold.splits.mode == "absolute":
            missing = sorted(set(self.enabled_sources) - set(self.gold.splits.cutoffs))
            if missing:
                raise ValueError(f"gold.splits.mode 'absolute' needs gold.splits.cutoffs for {missing}")
        if not self.enabled_sources:
            raise ValueError("sources: at least one source must be enabled")
        return self

    @property
    def gan_plans_refusal(self) -> str | None:
        """Why the clickstream may not be planned from the GAN's rows, if it may not: the GAN learns
        the period it is tested on. Refused by synthesize-events, not when the conf loads: a GAN that
        learns every period (a release of synthetic.behavior) is refused only to that clickstream."""
        if self.clickstream.sessions == "gan" and self.recs.evaluation_split in self.synth_periods:
            return (f"clickstream.sessions 'gan' plans sessions from a GAN that learns the "
                    f"{self.recs.evaluation_split!r} period (synth.periods {self.synth_periods}), the period the "
                    f"synthetic clickstream is tested on: leave {self.recs.evaluation_split!r} out of synth.periods, "
                    f"or set clickstream.sessions: real")
        return None

    @property
    def synth_periods(self) -> list[str]:
        """The gold.splits periods whose sessions the GAN learns: synth.periods, else the models' fit
        periods, so that nothing trained on synthetic rows has seen the period it is tested on."""
        return list(self.synth.periods or self.recs.fit_splits)

    @property
    def enabled_sources(self) -> dict[str, SourceConf]:
        return {name: src for name, src in self.sources.items() if src.enabled}

    def fingerprint(self, keys: Iterable[str] | None = None) -> str:
        """A short hash of the conf keys `keys` (dotted, e.g. "gold.event_weights"), or of the whole
        conf: a job records the hash of the keys it reads, so a change elsewhere does not re-run it."""
        whole = self.model_dump(mode="json")
        if keys is not None:
            check_keys(keys)
            whole = {key: _subtree(whole, key) for key in sorted(set(keys))}
        text = json.dumps(whole, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _subtree(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part] if tree is not None else None  # below an unset optional section: unset too
    return tree


def _section(annotation) -> type[BaseModel] | None:
    """The model class a field holds (also when optional), or None for a value or a mapping."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(filter(None, map(_section, typing.get_args(annotation))), None)
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def check_keys(keys: Iterable[str]) -> None:
    """Raise ConfigError naming the first dotted key that is not a key of the conf schema. Keys go
    down named sections only: a mapping (such as `sources`) is declared whole."""
    for key in keys:
        model: type[BaseModel] | None = Conf
        parts = key.split(".")
        for depth, part in enumerate(parts):
            parent = ".".join(parts[:depth]) or "the conf"
            if model is None:
                raise ConfigError(f"conf key {key!r}: {parent!r} holds a value or a mapping, not named keys; "
                                  f"use {parent!r} itself")
            if part not in model.model_fields:
                raise ConfigError(f"conf key {key!r}: {parent} has no key {part!r}; it has {sorted(model.model_fields)}")
            model = _section(model.model_fields[part].annotation)


class UndeclaredConfKey(LookupError):
    """A job read a conf key it does not declare, so its fingerprint would miss a change to it."""


class ConfView:
    """The conf as one job sees it. Keys under the job's declared `keys` or UNFINGERPRINTED read as
    usual; reading any other key raises UndeclaredConfKey, so no job can depend on a key its
    fingerprint leaves out. Properties (`enabled_sources`) are computed through the view."""

    __slots__ = ("_node", "_keys", "_job", "_at")

    def __init__(self, node: BaseModel, keys: Iterable[str], job: str, at: str = ""):
        self._node, self._keys, self._job, self._at = node, tuple(keys), job, at

    def __getattr__(self, name: str):
        if name.startswith("_"):  # private and special names (copy, pickle) are not conf keys
            raise AttributeError(name)
        model = type(self._node)
        dotted = f"{self._at}{name}"
        if name in model.model_fields:
            value = getattr(self._node, name)
            if any(dotted == key or dotted.startswith(f"{key}.") for key in (*self._keys, *UNFINGERPRINTED)):
                return value
            if value is not None and any(key.startswith(f"{dotted}.") for key in self._keys):
                return ConfView(value, self._keys, self._job, f"{dotted}.")
            raise UndeclaredConfKey(f"job {self._job!r} reads conf key {dotted!r} but does not declare it: add it to "
                                    f"the job's conf_keys {list(self._keys)} so that its fingerprint covers it")
        derived = inspect.getattr_static(model, name, None)
        if isinstance(derived, property) and not hasattr(BaseModel, name):
            return derived.fget(self)
        raise AttributeError(f"{dotted!r}: job {self._job!r} sees conf keys only, and {model.__name__} has no key {name!r}")


def default_conf_dir() -> Path:
    """The conf folder: $RECSYNTH_CONF_DIR, ./conf, the source checkout's, or the wheel's copy."""
    candidates = []
    if os.environ.get(CONF_DIR_VAR):
        candidates.append(Path(os.environ[CONF_DIR_VAR]))
    candidates += [Path.cwd() / "conf", Path(__file__).resolve().parents[2] / "conf", Path(__file__).parent / "conf"]
    for candidate in candidates:
        if (candidate / "defaults.yaml").is_file():
            return candidate
    raise ConfigError(f"no conf folder with defaults.yaml found; looked in {[str(c) for c in candidates]}")


def _read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
    return loaded


def _merge(base: dict, overlay: dict, origin: str, origins: dict[str, str], prefix: str = "") -> dict:
    """Deep-merge overlay into a copy of base, remembering which file set each key."""
    merged = dict(base)
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, origin, origins, dotted + ".")
        else:
            merged[key] = value
            origins.pop(dotted, None)   # re-inserted: origins stay in the order things were set
            origins[dotted] = origin
            if isinstance(value, dict):
                _record_origins(value, origin, origins, dotted + ".")
    return merged


def _record_origins(tree: dict, origin: str, origins: dict[str, str], prefix: str) -> None:
    for key, value in tree.items():
        origins.pop(f"{prefix}{key}", None)
        origins[f"{prefix}{key}"] = origin
        if isinstance(value, dict):
            _record_origins(value, origin, origins, f"{prefix}{key}.")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a','b','c'], value parsed as YAML, so numbers and booleans keep their type)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. spark.shuffle_partitions=4")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _nest(path: list[str], value: Any) -> dict:
    for part in reversed(path):
        value = {part: value}
    return value


def _origin_of(loc: tuple, origins: dict[str, str]) -> str:
    """Who last set `loc` or anything under it: for a section-level error (gold: its weights and
    bands disagree) the overlay or --set that changed the section last, not the file that made it."""
    parts = [str(p) for p in loc]
    while parts:
        dotted = ".".join(parts)
        setters = [origin for key, origin in origins.items() if key == dotted or key.startswith(dotted + ".")]
        if setters:
            return setters[-1]
        parts.pop()
    return "the merged configuration"


def load_conf(env: str | None = None, overrides: list[str] | tuple[str, ...] = (), conf_dir: str | Path | None = None,
              files: list[str] | tuple[str, ...] = ()) -> Conf:
    """Merge defaults.yaml, <env>.yaml, the extra overlay `files` (in order) and overrides;
    validate; return the frozen Conf. A relative overlay path that is not found from the working
    directory is looked up in the conf folder (e.g. synth/online_retail_invoices.yaml)."""
    env = env or os.environ.get(ENV_VAR) or "local"
    if env not in ENVIRONMENTS:
        raise ConfigError(f"environment {env!r} is not one of {list(ENVIRONMENTS)} (flag --env or ${ENV_VAR})")
    folder = Path(conf_dir) if conf_dir else default_conf_dir()
    origins: dict[str, str] = {}
    merged = _merge({}, _read_yaml(folder / "defaults.yaml"), str(folder / "defaults.yaml"), origins)
    overlay_path = folder / f"{env}.yaml"
    if overlay_path.is_file():
        merged = _merge(merged, _read_yaml(overlay_path), str(overlay_path), origins)
    for name in files:
        extra = Path(name)
        if not extra.is_file() and not extra.is_absolute() and (folder / extra).is_file():
            extra = folder / extra
        merged = _merge(merged, _read_yaml(extra), str(extra), origins)
    for text in overrides:
        path, value = parse_override(text)
        merged = _merge(merged, _nest(path, value), "command line", origins)
    try:
        return Conf.model_validate(merged)
    except ValidationError as err:
        lines = []
        for problem in err.errors():
            key = ".".join(str(p) for p in problem["loc"]) or "(top level)"
            what = problem["msg"]
            if problem["type"] == "extra_forbidden":
                what = "unknown key (check the spelling; see conf/defaults.yaml for the keys)"
            elif problem["type"] == "missing":
                what = "missing value: this key is required"
            lines.append(f"{_origin_of(problem['loc'], origins)}: {key}: {what}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
