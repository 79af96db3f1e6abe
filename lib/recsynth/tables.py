"""The table registry: every lake table's logical name, schema, writing job, write mode and the key
that makes a re-run idempotent (`TABLES`), and the lineage columns bronze rows carry, spelled once.

A table's writer is found in one hop: `Table.job` names the job, and the job's module
(`recsynth.tasks.<job>`) writes it. docs/TABLES.md lists the same (tests/test_tables.py checks).
"""
from __future__ import annotations

from dataclasses import dataclass

BRONZE_EVENTS = "bronze.events"
BRONZE_CATALOG = "bronze.catalog"
BRONZE_CATEGORY_TREE = "bronze.category_tree"
SILVER_EVENTS = "silver.events"
SILVER_ITEMS = "silver.items"
SILVER_CATEGORIES = "silver.categories"
SILVER_QUARANTINE = "silver.quarantine"
SILVER_RETURNS = "silver.returns"
GOLD_INTERACTIONS = "gold.interactions"
GOLD_USER_FEATURES = "gold.user_features"
GOLD_ITEM_FEATURES = "gold.item_features"
GOLD_BEHAVIOR = "gold.behavior"
GOLD_SPLITS = "gold.splits"
PERIODS = ("train", "validation", "test")  # the values of gold.splits.split, in time order
OPS_JOB_RUNS = "ops.job_runs"
OPS_DATA_QUALITY = "ops.data_quality"
OPS_INGESTED_FILES = "ops.ingested_files"

# Entities a source can provide, and the bronze table each lands in.
BRONZE_TABLE_OF_ENTITY = {
    "events": BRONZE_EVENTS,
    "catalog": BRONZE_CATALOG,
    "category_tree": BRONZE_CATEGORY_TREE,
}

# Lineage and bookkeeping columns on bronze rows.
SOURCE = "source"
RAW = "_raw"
MALFORMED = "_malformed"
FILE = "_file"
INGEST_RUN_ID = "_ingest_run_id"
INGESTED_AT = "_ingested_at"
# Set by the cleaning transforms: why a row was not accepted (null: accepted).
REASON = "_reason"

SYNTHETIC_ENCODED = "synthetic.encoded_behavior"  # the GAN's training input (transformer codes)
SYNTHETIC_BEHAVIOR = "synthetic.behavior"
SYNTHETIC_QUALITY = "synthetic.quality"
SYNTHETIC_SAMPLES = "synthetic.samples"  # conditional samples (recsynth sample), by model, condition and seed
SYNTHETIC_EVENTS = "synthetic.events"  # a synthetic clickstream, silver.events' columns (recsynth synthesize-events)
SYNTHETIC_EVENTS_QUALITY = "synthetic.events_quality"  # its fidelity and per-person privacy, one row per run
SYNTHETIC_UTILITY = "synthetic.utility"  # recommenders trained on it, tested on real users (evaluate-synthetic)

RECS_TOP_N = "recs.top_n"  # top-N items per user, by model_version (recsynth.rec.topn)
RECS_SIMILAR_ITEMS = "recs.similar_items"  # top-N similar items per item, by model_version
RECS_METRICS = "recs.metrics"  # offline metrics per run, split, model, task and source (recsynth recommend)
RECS_TRAINING_EXAMPLES = "recs.training_examples"  # the sequence model's training windows, read by Horovod ranks through Petastorm

# --- the registry ---------------------------------------------------------------------------
APPEND = "append"                    # rows are added; the key tells a re-run's rows apart
REPLACE_PER_KEY = "replace per key"  # a run replaces the rows of its key, other keys' rows stay
OVERWRITE = "overwrite"              # each run replaces the whole table
MODES = (APPEND, REPLACE_PER_KEY, OVERWRITE)
RUNNER = "job runner"  # ops.job_runs: one row per run of every job, written by recsynth.runtime.runs.run_job


@dataclass(frozen=True)
class Table:
    """One lake table. `schema` is a Spark DDL string where the code fixes the columns: the record
    writers build their frames from it, and the tables the transforms in etl/ and rec/ build are
    checked against it on real lakes (tests/test_pipeline.py, tests/test_recommend_job.py); None
    where the columns come from data or conf, `columns` saying which. `key`: the columns a run's rows are told apart or replaced by (None: overwritten whole).
    `output` False: a record of the run (ops.job_runs, ops.data_quality), written by every run, not
    in the job's `Job.outputs`, so neither its skip check nor the output versions it records follow it."""

    name: str
    job: str
    mode: str
    key: str | None
    schema: str | None = None
    columns: str = ""
    output: bool = True

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"{self.name}: mode {self.mode!r} is not one of {MODES}")
        if (self.key is None) != (self.mode == OVERWRITE):
            raise ValueError(f"{self.name}: a key is needed unless the table is overwritten whole")
        if (self.schema is None) == (not self.columns):
            raise ValueError(f"{self.name}: give either a schema or where its columns come from")

    @property
    def writer(self) -> str:
        """The module that writes the table."""
        return "recsynth.runtime.runs" if self.job == RUNNER else f"recsynth.tasks.{self.job}"

    @property
    def job_label(self) -> str:
        """How docs/TABLES.md names the writing job."""
        return self.job if self.output else f"{self.job} (run record)"

    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in schema_columns(self.schema)) if self.schema else ()


def schema_columns(ddl: str) -> tuple[tuple[str, str], ...]:
    """("name", "type") of each column of a DDL string (commas inside map<...> / struct<...> kept)."""
    columns, depth, start = [], 0, 0
    for i, char in enumerate(ddl + ","):
        depth += {"<": 1, ">": -1, "(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            name, _, kind = ddl[start:i].strip().partition(" ")
            columns.append((name, kind.strip()))
            start = i + 1
    return tuple(columns)


_BRONZE = ("the source's raw columns mapped to its entity's canonical ones (sources.to_canonical, config.py), "
           "with the lineage columns (source, _raw, _malformed, _file, _ingest_run_id, _ingested_at)")
_FILES = "(path, fingerprint) in ops.ingested_files"
_SILVER_EVENTS = ("event_id string, source string, event_time timestamp, user_id string, session_id string, "
                  "item_id string, event_type string, price double, transaction_id string, quantity int, "
                  "event_date date, _file string, _ingest_run_id string")
TABLES = (
    Table(BRONZE_EVENTS, "ingest", APPEND, _FILES, columns=_BRONZE),
    Table(BRONZE_CATALOG, "ingest", APPEND, _FILES, columns=_BRONZE),
    Table(BRONZE_CATEGORY_TREE, "ingest", APPEND, _FILES, columns=_BRONZE),
    Table(SILVER_EVENTS, "clean", OVERWRITE, None, schema=_SILVER_EVENTS),
    Table(SILVER_RETURNS, "clean", OVERWRITE, None, schema=_SILVER_EVENTS),
    Table(SILVER_ITEMS, "clean", OVERWRITE, None, schema=(
        "source string, item_id string, category_id string, category_path array<string>, brand string, "
        "price double, title string, description string, updated_at timestamp, origin string")),
    Table(SILVER_CATEGORIES, "clean", OVERWRITE, None, schema=(
        "source string, category_id string, parent_id string, path array<string>, depth int, _file string, "
        "_ingest_run_id string")),
    Table(SILVER_QUARANTINE, "clean", OVERWRITE, None, schema=(
        "source string, entity string, reason string, raw string, file string, ingest_run_id string, "
        "run_id string, quarantined_at timestamp")),
    Table(GOLD_INTERACTIONS, "gold", OVERWRITE, None, schema=(
        "source string, user_id string, item_id string, n_views bigint, n_carts bigint, n_purchases bigint, "
        "n_units bigint, weight double, first_time timestamp, last_time timestamp")),
    Table(GOLD_USER_FEATURES, "gold", OVERWRITE, None, schema=(
        "source string, user_id string, n_events bigint, n_sessions bigint, n_items bigint, n_views bigint, "
        "n_carts bigint, n_purchases bigint, active_days bigint, first_seen timestamp, last_seen timestamp, "
        "events_per_session double, purchase_rate double")),
    Table(GOLD_ITEM_FEATURES, "gold", OVERWRITE, None, schema=(
        "source string, item_id string, category_id string, category_l1 string, category_l2 string, "
        "category_path string, brand string, price double, price_band int, n_views bigint, n_carts bigint, "
        "n_purchases bigint, n_users bigint, popularity double, conversion_rate double, popularity_rank int")),
    Table(GOLD_BEHAVIOR, "gold", OVERWRITE, None, schema=(
        "source string, session_id string, user_id string, session_start timestamp, start_hour int, "
        "day_of_week string, duration_s double, n_events bigint, n_views bigint, n_carts bigint, "
        "n_purchases bigint, n_units bigint, n_items bigint, n_categories bigint, mean_price double, max_price double, "
        "spend double, top_category string, purchased boolean")),
    Table(GOLD_SPLITS, "gold", OVERWRITE, None, schema=(
        "source string, event_id string, user_id string, session_id string, item_id string, "
        "event_type string, event_time timestamp, price double, quantity int, split string")),
    Table(SYNTHETIC_ENCODED, "synthesize", OVERWRITE, None,
          columns="the transformer's codes of the columns synth.continuous and synth.categorical name (conf)"),
    Table(SYNTHETIC_BEHAVIOR, "synthesize", OVERWRITE, None,
          columns="synthetic_id, the gold.behavior columns synth.continuous and synth.categorical name (conf), "
                  "model_version, training_data_version, sample_seed"),
    Table(SYNTHETIC_QUALITY, "synthesize", APPEND, "run_id", schema=(
        "run_id string, model_version string, training_data_version bigint, training_rows bigint, synthetic_rows bigint, "
        "column_shapes double, exact_copy_share double, holdout_copy_share double, median_dcr_synthetic double, "
        "median_dcr_holdout double, dcr_ratio double, membership_auc double, gates_passed boolean, measured_at timestamp, "
        "pair_trends double, quality_overall double, efficacy_real_auc double, efficacy_synthetic_auc double, "
        "efficacy_auc_ratio double, report_uri string, rare_copies_dropped bigint, range_coverage double, "
        "category_coverage double, constraint_validity double, rare_share_ratios map<string,double>, "
        "pair_trends_sdmetrics double")),
    Table(SYNTHETIC_SAMPLES, "sample", REPLACE_PER_KEY, "(model_version, condition, sample_seed)",
          columns="the synthetic.behavior columns of the sampled model (conf), with condition in place of "
                  "training_data_version"),
    Table(SYNTHETIC_EVENTS, "synthesize_events", OVERWRITE, None, schema=(
        "event_id string, source string, event_time timestamp, user_id string, session_id string, item_id string, "
        "event_type string, price double, transaction_id string, quantity int, event_date date, model_version string, "
        "training_data_version bigint")),
    Table(SYNTHETIC_EVENTS_QUALITY, "synthesize_events", APPEND, "run_id", schema=(
        "run_id string, model_version string, generator string, training_data_version bigint, training_people bigint, "
        "holdout_people bigint, synthetic_people bigint, synthetic_events bigint, real_mean_session_events double, "
        "synthetic_mean_session_events double, session_events_ks double, real_item_gini double, "
        "synthetic_item_gini double, real_funnel map<string,double>, synthetic_funnel map<string,double>, "
        "train_ngram_share map<string,double>, holdout_ngram_share map<string,double>, "
        "train_person_share map<string,double>, holdout_person_share map<string,double>, membership_auc double, "
        "gates_passed boolean, measured_at timestamp, planned_category_share double, planned_purchase_share double, "
        "planned_cart_share double, planned_purchase_count_share double, planned_cart_count_share double, "
        "synthetic_common_move_share double, synthetic_repeat_move_share double, holdout_common_move_share double, "
        "holdout_repeat_move_share double, real_funnel_low map<string,double>, real_funnel_high map<string,double>")),
    Table(SYNTHETIC_UTILITY, "evaluate_synthetic", APPEND, "run_id", schema=(
        "run_id string, synthetic_model_version string, training_data_version bigint, evaluation_split string, "
        "model string, trained_on string, task string, source string, k int, ndcg_at_k double, ndcg_at_k_low double, "
        "ndcg_at_k_high double, users bigint, ratio_to_real double, measured_at timestamp, ratio_to_real_low double, "
        "ratio_to_real_high double")),
    Table(RECS_TRAINING_EXAMPLES, "recommend", OVERWRITE, None, schema=(
        "items array<int>, types array<int>, source_idx int")),
    Table(RECS_METRICS, "recommend", APPEND, "run_id", schema=(
        "run_id string, model string, model_version string, training_data_version bigint, evaluation_split string, "
        "k int, precision_at_k double, recall_at_k double, ndcg_at_k double, map_at_k double, hit_rate_at_k double, "
        "catalogue_coverage double, novelty double, users bigint, catalogue_items bigint, measured_at timestamp, "
        "task string, source string, ndcg_at_k_low double, ndcg_at_k_high double, params string, served boolean")),
    Table(RECS_TOP_N, "recommend", REPLACE_PER_KEY, "model_version", schema=(
        "user_id string, rank int, item_id string, score double, model_version string, generated_at timestamp")),
    Table(RECS_SIMILAR_ITEMS, "recommend", REPLACE_PER_KEY, "model_version", schema=(
        "item_id string, rank int, similar_item_id string, score double, model_version string, generated_at timestamp")),
    Table(OPS_JOB_RUNS, RUNNER, APPEND, "run_id", output=False, schema=(
        "run_id string, job string, status string, conf_hash string, started_at timestamp, ended_at timestamp, "
        "rows_in bigint, rows_out bigint, input_versions map<string,bigint>, output_versions map<string,bigint>, "
        "message string")),
    Table(OPS_DATA_QUALITY, "clean", APPEND, "run_id", output=False, schema=(
        "run_id string, job string, source string, entity string, metric string, reason string, rows bigint, "
        "measured_at timestamp")),
    Table(OPS_INGESTED_FILES, "ingest", APPEND, "(path, fingerprint)", schema=(
        "source string, entity string, path string, fingerprint string, size bigint, modified_at timestamp, "
        "rows bigint, run_id string, ingested_at timestamp")),
)
REGISTRY = {table.name: table for table in TABLES}


def schema(name: str) -> str:
    """The DDL schema of a table whose columns the code fixes."""
    ddl = REGISTRY[name].schema
    if ddl is None:
        raise KeyError(f"{name} has no fixed schema: {REGISTRY[name].columns}")
    return ddl


def written_by(job: str) -> tuple[str, ...]:
    """The tables `job` writes (RUNNER: ops.job_runs), its run records included."""
    return tuple(table.name for table in TABLES if table.job == job)


def outputs_of(job: str) -> tuple[str, ...]:
    """The tables `job` writes that are its declared outputs (`Job.outputs`): all but its run records."""
    return tuple(table.name for table in TABLES if table.job == job and table.output)


# Every table the jobs write, layer by layer (the registry's order): what `recsynth status` reports on.
ALL = tuple(REGISTRY)
