"""Logical names of the lake's tables and the lineage columns they carry, spelled once."""

BRONZE_EVENTS = "bronze.events"
BRONZE_CATALOG = "bronze.catalog"
BRONZE_CATEGORY_TREE = "bronze.category_tree"
SILVER_EVENTS = "silver.events"
SILVER_ITEMS = "silver.items"
SILVER_CATEGORIES = "silver.categories"
SILVER_QUARANTINE = "silver.quarantine"
GOLD_INTERACTIONS = "gold.interactions"
GOLD_USER_FEATURES = "gold.user_features"
GOLD_ITEM_FEATURES = "gold.item_features"
GOLD_BEHAVIOR = "gold.behavior"
GOLD_SPLITS = "gold.splits"
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

RECS_TOP_N = "recs.top_n"  # top-N items per user, by model_version (recsynth.rec.topn)
RECS_SIMILAR_ITEMS = "recs.similar_items"  # top-N similar items per item, by model_version
RECS_METRICS = "recs.metrics"  # offline metrics per model and run (recsynth recommend)
RECS_TRAINING_EXAMPLES = "recs.training_examples"  # the two-tower's training input, read by Horovod ranks through Petastorm

# Every table the jobs write, layer by layer: what `recsynth status` reports on.
ALL = (
    BRONZE_EVENTS, BRONZE_CATALOG, BRONZE_CATEGORY_TREE,
    SILVER_EVENTS, SILVER_ITEMS, SILVER_CATEGORIES, SILVER_QUARANTINE,
    GOLD_INTERACTIONS, GOLD_USER_FEATURES, GOLD_ITEM_FEATURES, GOLD_BEHAVIOR, GOLD_SPLITS,
    SYNTHETIC_ENCODED, SYNTHETIC_BEHAVIOR, SYNTHETIC_QUALITY, SYNTHETIC_SAMPLES,
    RECS_TRAINING_EXAMPLES, RECS_METRICS, RECS_TOP_N, RECS_SIMILAR_ITEMS,
    OPS_JOB_RUNS, OPS_DATA_QUALITY, OPS_INGESTED_FILES,
)
