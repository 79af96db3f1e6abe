"""Configuration: merging, overrides and errors that name the file, the key and the expectation."""
from pathlib import Path

import pytest

from recsynth.config import Conf, ConfView, UndeclaredConfKey, check_keys, load_conf, parse_override
from recsynth.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_defaults_with_local_overlay():
    conf = load_conf("local", [], CONF)
    assert conf.spark.master == "local[2]"
    assert conf.spark.delta_jars_dir == ".cache/jars"
    assert set(conf.enabled_sources) == {"retailrocket", "rees46"}
    assert conf.sources["rees46"].events.time.format == "yyyy-MM-dd HH:mm:ss 'UTC'"


def test_databricks_overlay_merges_deeply():
    conf = load_conf("databricks", [], CONF)
    assert conf.lake.catalog == "main"
    assert conf.sources["rees46"].events.path == "dbfs:/recsynth/raw/rees46/*.csv"
    # keys the overlay does not mention keep their defaults
    assert conf.sources["rees46"].events.columns["item_id"] == "product_id"


def test_override_keeps_yaml_types():
    conf = load_conf("local", ["spark.shuffle_partitions=3", "sources.rees46.enabled=false"], CONF)
    assert conf.spark.shuffle_partitions == 3
    assert set(conf.enabled_sources) == {"retailrocket"}
    assert parse_override("a.b=1.5") == (["a", "b"], 1.5)


def test_unknown_key_names_file_and_key(tmp_path):
    (tmp_path / "defaults.yaml").write_text((CONF / "defaults.yaml").read_text())
    (tmp_path / "local.yaml").write_text("spark:\n  shuffle_partitons: 4\n")
    with pytest.raises(ConfigError) as err:
        load_conf("local", [], tmp_path)
    message = str(err.value)
    assert f"{tmp_path / 'local.yaml'}: spark.shuffle_partitons: unknown key" in message


def test_wrong_type_from_command_line():
    with pytest.raises(ConfigError) as err:
        load_conf("local", ["spark.shuffle_partitions=many"], CONF)
    assert "command line: spark.shuffle_partitions:" in str(err.value)
    assert "integer" in str(err.value)


def test_missing_value_names_key(tmp_path):
    text = (CONF / "defaults.yaml").read_text().replace("  max_price: 1000000\n", "")
    (tmp_path / "defaults.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_conf("local", [], tmp_path)
    assert "clean.max_price: missing value" in str(err.value)


def test_bad_source_mapping_is_explained():
    with pytest.raises(ConfigError) as err:
        load_conf("local", ["sources.rees46.events.event_types.view=looked"], CONF)
    assert "sources.rees46.events" in str(err.value) and "looked" in str(err.value)


def test_absolute_splits_need_cutoffs():
    with pytest.raises(ConfigError, match="cutoffs"):
        load_conf("local", ["gold.splits.mode=absolute"], CONF)


def test_unknown_environment_and_bad_override():
    with pytest.raises(ConfigError, match="not one of"):
        load_conf("prod", [], CONF)
    with pytest.raises(ConfigError, match="key=value"):
        load_conf("local", ["spark.shuffle_partitions"], CONF)


def test_fingerprint_changes_with_conf():
    assert load_conf("local", [], CONF).fingerprint() == load_conf("local", [], CONF).fingerprint()
    assert load_conf("local", [], CONF).fingerprint() != load_conf("local", ["clean.max_price=10"], CONF).fingerprint()


# One change under every section of the conf, and the jobs whose fingerprint it must change.
CHANGES = {
    "sources.rees46.enabled=false": {"ingest", "clean"},
    "sources.retailrocket.events.time.timezone=Europe/Paris": {"ingest", "clean"},
    "clean.session_gap_minutes=45": {"clean"},
    "gold.price_bands=[5, 50]": {"gold"},
    "gold.event_weights.purchase=9": {"gold", "recommend", "evaluate_synthetic"},
    "privacy.pseudonym.key_env=OTHER_KEY": {"gold"},
    "synth.gan.epochs=3": {"synthesize"},
    "synth.periods=[train]": {"synthesize", "synthesize_events"},   # where it plans from the GAN, whether it may
    "recs.k=20": {"recommend", "evaluate_synthetic"},
    "recs.fit_splits=[validation, train]": {"recommend", "evaluate_synthetic", "synthesize_events", "synthesize"},
    "recs.two_tower.epochs=2": {"recommend"},
    "recs.sequence.max_epochs=5": {"recommend"},
    "clickstream.min_people=3": {"synthesize_events"},
    "clickstream.sequence.temperature=0.7": {"synthesize_events"},
    "clickstream.tstr_models=[ease]": {"evaluate_synthetic"},
    "clickstream.enabled=true": set(),   # which jobs the pipeline runs, not what a job does
    "tracking.recommender_model=other": set(),
    "lake.root=/elsewhere": set(),
    "lake.catalog=other": set(),
    "spark.shuffle_partitions=7": set(),
    "spark.extra={spark.ui.enabled: 'false'}": set(),
    "tracking.experiment=other": set(),
    "ops.log_level=DEBUG": set(),
    "sql_server.port=10001": set(),
}


def test_changes_cover_every_conf_section():
    assert {change.split(".")[0] for change in CHANGES} == set(Conf.model_fields)


@pytest.mark.parametrize("change", CHANGES)
def test_a_job_fingerprints_only_the_keys_it_reads(change):
    from recsynth.pipeline import JOBS

    base, changed = load_conf("local", [], CONF), load_conf("local", [change], CONF)
    moved = {job.name for job in JOBS.values() if base.fingerprint(job.conf_keys) != changed.fingerprint(job.conf_keys)}
    assert moved == CHANGES[change]


def test_conf_keys_name_keys_of_the_schema():
    check_keys(["recs", "gold.event_weights", "privacy.pseudonym.secret.scope", "sources"])
    with pytest.raises(ConfigError, match="conf key 'recs.kk': recs has no key 'kk'"):
        check_keys(["recs.kk"])
    with pytest.raises(ConfigError, match="'sources' holds a value or a mapping, not named keys; use 'sources'"):
        check_keys(["sources.rees46"])


def test_a_job_declaring_an_unknown_key_fails_where_it_is_declared():
    from recsynth.runtime.runs import Job

    with pytest.raises(ConfigError, match="conf key 'gold.weights'"):
        Job(name="x", inputs=(), outputs=(), conf_keys=("gold.weights",), body=lambda ctx: None)


def test_a_job_sees_only_its_keys_and_those_no_output_depends_on():
    conf = load_conf("local", [], CONF)
    view = ConfView(conf, ("recs", "gold.event_weights"), "recommend")
    assert view.recs is conf.recs and view.gold.event_weights == conf.gold.event_weights
    assert (view.ops, view.tracking, view.lake, view.spark, view.sql_server) == (
        conf.ops, conf.tracking, conf.lake, conf.spark, conf.sql_server)
    for read, key in [(lambda: view.synth, "synth"), (lambda: view.gold.price_bands, "gold.price_bands"),
                      (lambda: view.enabled_sources, "sources")]:
        with pytest.raises(UndeclaredConfKey, match=f"job 'recommend' reads conf key '{key}' but does not declare it"):
            read()
    assert list(ConfView(conf, ("sources",), "ingest").enabled_sources) == list(conf.enabled_sources)
    with pytest.raises(AttributeError, match="has no key 'recz'"):
        view.recz


def assert_refused(override: str, expected: str) -> None:
    """Loading the conf with `override` fails with a message that holds `expected`."""
    with pytest.raises(ConfigError) as err:
        load_conf("local", [override], CONF)
    assert expected in str(err.value), (override, str(err.value))


def test_recommender_settings_are_checked():
    recs = load_conf("local", ["recs.categories=[1509, electronics/audio]"], CONF).recs
    assert recs.categories == ["1509", "electronics/audio"]  # ids from YAML numbers are matched as text
    assert recs.evaluation_split not in recs.fit_splits
    for override, expected in [
        ("recs.k=0", "recs.k: Input should be greater than or equal to 1"),
        ("recs.fit_splits=[train, test]", "evaluation_split 'test' is also in fit_splits"),
        ("recs.truth_event_types=[click]", "recs.truth_event_types.0: Input should be 'view', 'cart' or 'purchase'"),
        ("recs.categories=[]", "categories must be null"),
        ("recs.two_tower.batch_size=1", "recs.two_tower.batch_size: Input should be greater than or equal to 2"),
        ("recs.als.rank=0", "recs.als.rank"),
        ("recs.sequence.heads=3", "embedding_dim (64) must be a multiple of heads (3)"),
        ("recs.sequence.dropout=1", "recs.sequence.dropout: Input should be less than 1"),
        ("recs.search={enabled: true, grids: {als: {rank: [16, 0]}}}", "grids.als.rank: 0: Input should be greater"),
        ("recs.search.grids.ease={l2: [1.0]}", "grids.ease.l2: not a searchable key of recs.ease"),
        ("recs.search.grids.itemknn={k: [1]}", "not a searchable key of recs.itemknn (one of ['max_neighbours'])"),
        ("recs.search.grids.sequence={embedding_dim: [64, 33]}", "the setting {'learning_rate': 0.001, 'dropout': 0.1, "
                                                                 "'embedding_dim': 33}: Value error, embedding_dim (33)"),
        ("recs.baselines=[recent, knn]", "recs.baselines.1: Input should be 'popularity', 'recent'"),
        ("recs.baselines=[recent, recent]", "baselines ['recent', 'recent'] names a model twice"),
        ("recs.serve=two_tower", "serve 'two_tower' is not one of the models this conf runs: ['popularity', 'recent',"
                                 " 'cooccurrence', 'itemknn', 'ease', 'als', 'recent_ease', 'sequence']"),
    ]:
        assert_refused(override, expected)
    with pytest.raises(ConfigError, match=r"serve 'ease' is not one of the models this conf runs: \['recent', 'sequence'\]"):
        load_conf("local", ["recs.baselines=[recent]", "recs.serve=ease"], CONF)
    searched = load_conf("local", ["recs.search.enabled=true", "recs.search.grids.ease=null"], CONF).recs.search
    assert list(searched.grids) == ["cooccurrence", "itemknn", "als", "sequence"]  # the default grids are valid
    with pytest.raises(ConfigError, match="search.enabled tries settings on the validation period"):
        load_conf("local", ["recs.search.enabled=true", "recs.validation_split=null"], CONF)


@pytest.mark.parametrize("override, expected", [
    ("sources.online_retail.events.event_type=return", "event_type 'return' is not canonical"),
    ("sources.online_retail.events.returns.column=invoice", "returns.column 'invoice' is not a canonical event column"),
    ("sources.online_retail.events.returns.column=brand", "returns.column 'brand' is not a canonical event column"),
    ("sources.online_retail.events.returns.column=event_type", "returns.column 'event_type' is not mapped in columns"),
    ("sources.online_retail.events.returns.pattern=^C(", "returns.pattern: pattern '^C(' does not compile"),
    ("sources.online_retail.not_a_product=[POST, '[']", "not_a_product: pattern '[' does not compile"),
    ("sources.online_retail.events.event_types={x: purchase}", "exclude each other"),
    ("sources.online_retail.clean.duplicates=row", "sources.online_retail.clean.duplicates"),
    ("sources.online_retail.clean.bots.max_events_per_minute=0", "greater than or equal to 1"),
])
def test_transaction_export_keys_are_checked_before_spark_starts(override, expected):
    with pytest.raises(ConfigError) as err:
        load_conf("local", [override], CONF)
    assert expected in str(err.value)


def test_an_event_type_is_mapped_or_constant():
    with pytest.raises(ConfigError, match="events need an event type"):
        load_conf("local", ["sources.online_retail.events.event_type=null"], CONF)
    with pytest.raises(ConfigError, match="a mapped event_type column needs event_types"):
        load_conf("local", ["sources.online_retail.events.event_type=null", "sources.online_retail.events.columns.event_type=Country"],
                  CONF)
    orders = load_conf("local", ["sources.online_retail.enabled=true"], CONF).sources["online_retail"]
    assert (orders.events.event_type, orders.events.required_columns) == ("purchase", ("event_time", "user_id", "item_id"))


def test_synthesizer_rules_are_checked_before_spark_starts():
    synth = load_conf("local", [], CONF).synth
    assert list(synth.derived) == ["n_purchases", "n_views", "n_events", "n_items", "duration_s", "max_price", "spend"]
    assert list(synth.learned_as) == ["items_share", "seconds_per_step", "price_spread"]
    for override, expected in [
        ("synth.kinds={spend: poisson}", "synth.kinds.spend: Input should be 'mixture', 'zero_inflated' or 'discrete'"),
        ("synth.kinds={source: discrete}", "kinds names ['source'], which are not continuous or learned_as columns"),
        ("synth.learned_as={n_views: 'n_events - n_carts'}", "learned_as names ['n_views'], which are published columns"),
        ("synth.learned_as={gap: 'n_events - n_items'}", "learned_as ['gap']: no derived expression reads it"),
        ("synth.derived={max_price: null}", "learned_as ['price_spread']: no derived expression reads it"),
        ("synth.derived={basket: 'n_views * 2'}", "derived names ['basket'], which are not continuous or categorical"),
        ("synth.constraints=['  ']", "empty expression(s) for ['  ']"),
        ("synth.calibration.fill=[basket]", "calibration.fill names ['basket']: each must be a categorical column"),
        ("synth.kinds={spend: mixture}", "calibration.fill names ['spend']: each must be a categorical column"),
        ("synth.calibration.draw_order=[source, basket]", "calibration.draw_order names ['basket'], which are not"),
        ("synth.quality.rare_shares={paid: {where: 'spend > 0', within: [1.5, 2.0]}}", "low <= 1 <= high"),
        ("synth.quality.rare_shares={paid: {where: 'spend > 0'}}", "synth.quality.rare_shares.paid.within: missing value"),
        ("synth.zero_inflated_min_share=0", "synth.zero_inflated_min_share: Input should be greater than 0"),
    ]:
        assert_refused(override, expected)


def test_an_overlay_file_replaces_a_table_and_removes_inherited_rules(tmp_path):
    invoices = load_conf("local", [], CONF, ["synth/online_retail_invoices.yaml"]).synth  # found in the conf folder
    assert invoices.rows_where == "source = 'online_retail'"
    assert list(invoices.derived) == ["n_items", "max_price", "spend", "n_units"]  # n_purchases, n_events: removed
    assert list(invoices.learned_as) == ["items_share", "spend_per_unit"]  # seconds_per_step, price_spread: removed
    assert "purchase" not in invoices.quality.rare_shares and "single_line" in invoices.quality.rare_shares
    assert invoices.calibration.draw_order == []   # no source or carts learnt there
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("synth:\n  derived: {spend: null}\n  gan: {epochs: 7}\n")
    mine = load_conf("local", ["synth.gan.epochs=9"], CONF, [str(overlay)]).synth
    assert list(mine.derived) == ["n_purchases", "n_views", "n_events", "n_items", "duration_s", "max_price"]
    assert mine.gan.epochs == 9  # --set wins
    with pytest.raises(ConfigError, match="nowhere.yaml: file not found"):
        load_conf("local", [], CONF, ["nowhere.yaml"])
    overlay.write_text("synth:\n  derived: {basket: 'n_views * 2'}\n")
    with pytest.raises(ConfigError, match=r"synth: Value error, derived names \['basket'\]"):
        load_conf("local", [], CONF, [str(overlay)])


def test_section_error_names_the_override_that_broke_it():
    """gold's own check (bands increasing) fails on a value set on the command line: the error
    names the command line, not defaults.yaml where the section was first written."""
    with pytest.raises(ConfigError) as err:
        load_conf("local", ["gold.price_bands=[50, 10]"], CONF)
    assert "command line: gold: " in str(err.value) and "price_bands must be increasing" in str(err.value)


def test_driver_java_options_come_after_recsynths_own():
    from recsynth.session import LOG4J2_PROPERTIES, session_settings

    plain = session_settings(load_conf("local", ["lake.metastore_dir=null", "lake.metastore_server=null"], CONF))
    assert plain["spark.driver.extraJavaOptions"] == f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES}"
    tuned = session_settings(load_conf("local", ["lake.metastore_dir=null", "lake.metastore_server=null",
                                                 "spark.driver_java_options=-Xss4m -XX:+UseG1GC"], CONF))
    assert tuned["spark.driver.extraJavaOptions"] == f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES} -Xss4m -XX:+UseG1GC"


def test_local_mode_replays_delta_logs_in_few_tasks_and_clusters_keep_deltas_default():
    from recsynth.session import session_settings

    offline = ["lake.metastore_dir=null", "lake.metastore_server=null"]
    assert session_settings(load_conf("local", offline, CONF))["spark.databricks.delta.snapshotPartitions"] == "2"
    for env in ("standalone", "databricks"):
        assert "spark.databricks.delta.snapshotPartitions" not in session_settings(load_conf(env, offline, CONF))
    with pytest.raises(ConfigError, match="delta_snapshot_partitions"):
        load_conf("local", [*offline, "spark.delta_snapshot_partitions=0"], CONF)


def test_the_sequence_generator_reads_planned_contexts_unless_told_not_to():
    """clickstream.sequence: its network is conditioned on the category vocabulary (plus padding
    and "other"), or on nothing with conditioned=false."""
    from types import SimpleNamespace

    from recsynth.tasks.clickstream_generator import generator_params

    conditioned = generator_params(SimpleNamespace(conf=load_conf("local", [], CONF)), categories=7)
    plain = generator_params(SimpleNamespace(conf=load_conf("local", ["clickstream.sequence.conditioned=false"], CONF)),
                             categories=7)
    assert (conditioned.context_categories, plain.context_categories) == (9, 0)
    assert conditioned.generator and plain.generator and conditioned.max_epochs == 10



def test_the_generators_temperature_min_p_and_replay_are_sampling_settings_not_network_parameters():
    """A new temperature, min-p cut, replay or same-item shift rewrites the clickstream from the same trained
    network (its checkpoint folder is keyed by the network's parameters); the temperature must be
    above 0, the cut in [0, 1), the replay's taste at least 0."""
    from types import SimpleNamespace

    from recsynth.rec.sequence import params_dict
    from recsynth.tasks.clickstream_generator import generator_params

    sharp = load_conf("local", ["clickstream.sequence.temperature=0.5", "clickstream.sequence.min_p=0.05",
                                "clickstream.sequence.replay=0.5", "clickstream.sequence.replay_taste=1",
                                "clickstream.sequence.avoid_distinctive_paths=false",
                                "clickstream.sequence.same_item_shift=-1"], CONF)
    assert (sharp.clickstream.sequence.temperature, sharp.clickstream.sequence.min_p) == (0.5, 0.05)
    assert params_dict(generator_params(SimpleNamespace(conf=sharp), categories=7)) == \
        params_dict(generator_params(SimpleNamespace(conf=load_conf("local", [], CONF)), categories=7))
    with pytest.raises(ConfigError, match="temperature"):
        load_conf("local", ["clickstream.sequence.temperature=0"], CONF)
    with pytest.raises(ConfigError, match="min_p"):
        load_conf("local", ["clickstream.sequence.min_p=1"], CONF)
    with pytest.raises(ConfigError, match="replay_taste"):
        load_conf("local", ["clickstream.sequence.replay_taste=-1"], CONF)
