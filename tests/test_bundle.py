"""The Databricks asset bundle (databricks.yml + resources/*.yml), checked offline.

There is no workspace here, so the bundle is checked the ways that need none:
- every file, and the merged bundle resolved for each target, is valid against the bundle JSON
  schema that the Databricks CLI publishes (vendored in tests/data, see its README);
- every task runs an entry point the wheel really has, and its parameters parse with recsynth's
  own CLI and conf loader into the catalog, storage root and rank count the bundle passes;
- the DAG is recsynth's pipeline order, then the synthetic clickstream's tasks only when a run's
  parameter asks for them; ETL runs on the CPU cluster (15.4 LTS) and training on the GPU ML
  cluster pinned to 15.4 LTS ML (the last ML runtime that ships Horovod);
- installing the wheel on a cluster pulls neither Spark nor Horovod/TensorFlow, and every module
  a job imports at start is in the wheel's requirements or in the 15.4 LTS runtime.
No Spark session is started.
"""
from __future__ import annotations

import ast
import copy
import glob
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from conftest import ROOT
from recsynth.config import load_conf

SCHEMA_PATH = ROOT / "tests" / "data" / "databricks_bundle_schema.json"
JOB = "recsynth_pipeline"
ETL_RUNTIME = "15.4.x-scala2.12"
TRAINING_RUNTIME = "15.4.x-gpu-ml-scala2.12"
# What `databricks bundle deploy --var ...` would be given; storage_root has no default on purpose.
CLI_VARS = {"dev": {"storage_root": "s3://example-bucket/recsynth/dev"},
            "prod": {"storage_root": "s3://example-bucket/recsynth/prod"}}
# Stand-ins for what the CLI looks up in the workspace at deploy time.
WORKSPACE_REFS = {"workspace.current_user.userName": "someone@example.com",
                  "workspace.current_user.short_name": "someone"}
REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-\[\]]+)\}")


# --- loading and resolving the bundle, the way the CLI does for what this bundle uses ----------------
def _load_yaml(path: Path) -> dict:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path}: expected a mapping at the top level"
    return loaded


def bundle_files() -> list[Path]:
    root = _load_yaml(ROOT / "databricks.yml")
    files = [ROOT / "databricks.yml"]
    for pattern in root.get("include", []):
        matched = sorted(Path(p) for p in glob.glob(str(ROOT / pattern)))
        assert matched, f"databricks.yml includes {pattern!r}, which matches no file"
        files += matched
    return files


def _merge_files(base: dict, extra: dict, where: str) -> dict:
    """Files are combined; the same key set to two different values is an error, as in the CLI."""
    merged = dict(base)
    for key, value in extra.items():
        if key in merged and isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = _merge_files(merged[key], value, f"{where}.{key}")
        elif key in merged and merged[key] != value:
            raise AssertionError(f"{where}.{key} is defined in more than one bundle file")
        else:
            merged[key] = value
    return merged


def _override(base: dict, overlay: dict) -> dict:
    """A target's settings win over the top-level ones (mappings merged key by key)."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = _override(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def merged_bundle() -> dict:
    config: dict = {}
    for path in bundle_files():
        config = _merge_files(config, _load_yaml(path), path.name)
    return config


def variable_values(config: dict, target: str, cli_vars: dict) -> dict:
    """--var beats the target's value, which beats the variable's default."""
    overrides = config["targets"][target].get("variables", {})
    values = {}
    for name, definition in config.get("variables", {}).items():
        if name in cli_vars:
            values[name] = cli_vars[name]
        elif name in overrides:
            given = overrides[name]
            values[name] = given["default"] if isinstance(given, dict) and "default" in given else given
        elif "default" in definition:
            values[name] = definition["default"]
        else:
            raise AssertionError(f"target {target}: variable {name!r} has no value (no default, not set by the target or --var)")
    unknown = set(overrides) - set(values)
    assert not unknown, f"target {target} sets undeclared variable(s) {sorted(unknown)}"
    return values


def _substitute(node, refs: dict):
    if isinstance(node, dict):
        return {k: _substitute(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, refs) for v in node]
    if not isinstance(node, str):
        return node
    for ref in REFERENCE.findall(node):
        assert ref in refs, f"unknown reference ${{{ref}}} in {node!r}"
    whole = REFERENCE.fullmatch(node)
    if whole:  # "${var.x}" alone keeps the value's type (an int stays an int)
        return refs[whole.group(1)]
    return REFERENCE.sub(lambda m: str(refs[m.group(1)]), node)


def resolve(target: str, cli_vars: dict | None = None) -> dict:
    """The bundle as the CLI would deploy it for `target`: target settings merged, references filled."""
    config = merged_bundle()
    assert target in config.get("targets", {}), f"no target {target!r} in databricks.yml"
    values = variable_values(config, target, cli_vars or {})
    resolved = _override({k: v for k, v in config.items() if k != "targets"},
                         {k: v for k, v in config["targets"][target].items() if k not in ("variables", "default", "mode")})
    refs = {**WORKSPACE_REFS, "bundle.name": resolved["bundle"]["name"], "bundle.target": target,
            **{f"var.{name}": value for name, value in values.items()}}
    for _ in range(5):  # a variable's value may itself hold a reference
        refs = {k: _substitute(v, refs) for k, v in refs.items()}
    resolved = _substitute(resolved, refs)
    resolved["variables"] = {name: {**definition, "default": values[name]}
                             for name, definition in config.get("variables", {}).items()}
    return resolved


TARGETS = sorted(merged_bundle()["targets"])


# --- schema ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _leaves(error):
    if not error.context:
        yield error
    for sub in error.context:
        yield from _leaves(sub)


def _schema_errors(validator: Draft202012Validator, document: dict) -> list[str]:
    """One line per error, naming the deepest failing key (the schema nests oneOf at every level:
    a value or a ${var.x} string), so a misspelt key reads as such."""
    messages = []
    for error in validator.iter_errors(document):
        leaves = list(_leaves(error))
        # the object branch's failure, not "is not a string matching ${...}"
        real = [e for e in leaves if e.validator not in ("type", "pattern")] or leaves
        deepest = max(real, key=lambda e: len(e.absolute_path))
        messages.append(f"{deepest.json_path}: {deepest.message[:300]}")
    return messages


def test_vendored_schema_is_the_recorded_cli_version():
    readme = (ROOT / "tests" / "data" / "README.md").read_text()
    digest = hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest()
    assert digest in readme, "tests/data/README.md must record the schema's CLI version and SHA-256"


@pytest.mark.parametrize("path", bundle_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_bundle_file_is_valid_against_the_cli_schema(validator, path):
    assert _schema_errors(validator, _load_yaml(path)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_resolved_bundle_is_valid_against_the_cli_schema(validator, target):
    resolved = resolve(target, CLI_VARS[target])
    assert _schema_errors(validator, resolved) == []
    assert not REFERENCE.search(json.dumps(resolved)), "a ${...} reference was left unresolved"


def test_schema_check_is_not_vacuous(validator):
    """A misspelt task key and a wrong type are caught, so a pass above means something."""
    resolved = resolve("dev", CLI_VARS["dev"])
    misspelt = copy.deepcopy(resolved)
    misspelt["resources"]["jobs"][JOB]["tasks"][0]["job_cluster"] = "etl_cpu"
    wrong_type = copy.deepcopy(resolved)
    wrong_type["resources"]["jobs"][JOB]["job_clusters"][0]["new_cluster"]["num_workers"] = "two"
    assert _schema_errors(validator, misspelt)
    assert _schema_errors(validator, wrong_type)


def test_a_missing_variable_is_reported():
    with pytest.raises(AssertionError, match="storage_root"):
        resolve("prod")


# --- targets, schedule, clusters, DAG ----------------------------------------------------------------
def _job(target: str) -> dict:
    return resolve(target, CLI_VARS[target])["resources"]["jobs"][JOB]


def test_targets_dev_is_default_development_prod_is_production():
    targets = merged_bundle()["targets"]
    assert set(targets) == {"dev", "prod"}
    assert targets["dev"]["mode"] == "development" and targets["dev"].get("default") is True
    assert targets["prod"]["mode"] == "production" and not targets["prod"].get("default")
    for target in targets.values():  # the task lists are defined once, in resources/, for every target
        for job in target.get("resources", {}).get("jobs", {}).values():
            assert not {"tasks", "job_clusters"} & set(job)


def test_schedule_retries_and_no_overlapping_runs():
    for target, pause in (("dev", "PAUSED"), ("prod", "UNPAUSED")):
        job = _job(target)
        assert job["schedule"]["pause_status"] == pause
        assert job["schedule"]["quartz_cron_expression"].split()[:3] == ["0", "0", "2"]
        assert job["max_concurrent_runs"] == 1
        assert all(task["max_retries"] >= 1 for task in _job_tasks(job))
    assert _job("prod")["email_notifications"]["on_failure"] == [WORKSPACE_REFS["workspace.current_user.userName"]]


def _job_tasks(job: dict) -> list[dict]:
    """The tasks that run a recsynth job (not the condition that gates the clickstream's)."""
    return [task for task in job["tasks"] if "condition_task" not in task]


def _depends(task: dict) -> list[tuple]:
    return [(d["task_key"], d.get("outcome")) for d in task.get("depends_on", [])]


def test_dag_is_the_pipeline_order_then_the_clickstream_when_a_run_asks_for_it():
    from recsynth.pipeline import CLICKSTREAM, PIPELINE

    tasks = _job("dev")["tasks"]
    order = [job.name for job in PIPELINE]
    assert order == ["ingest", "clean", "gold", "synthesize", "recommend"]
    assert [t["task_key"] for t in tasks[:5]] == order
    for previous, task in zip([None, *order], tasks):
        assert _depends(task) == ([(previous, None)] if previous else [])
    # after recommend (the GPU cluster's Horovod slots are free again), only when the run's
    # synthetic_clickstream parameter is "true" (default "false": a plain run skips the rest)
    branch = {t["task_key"]: t for t in tasks[5:]}
    assert set(branch) == {"clickstream_wanted", *[job.name for job in CLICKSTREAM], "synthetic_gold",
                           "synthetic_recommend"}
    wanted = branch["clickstream_wanted"]
    assert _depends(wanted) == [("recommend", None)]
    assert wanted["condition_task"] == {"op": "EQUAL_TO", "left": "{{job.parameters.synthetic_clickstream}}",
                                        "right": "true"}
    assert {p["name"]: p["default"] for p in _job("dev")["parameters"]} == {"synthetic_clickstream": "false"}
    assert _depends(branch["synthesize_events"]) == [("clickstream_wanted", "true")]
    assert _depends(branch["evaluate_synthetic"]) == [("synthesize_events", None)]
    assert _depends(branch["synthetic_gold"]) == [("synthesize_events", None)]
    assert _depends(branch["synthetic_recommend"]) == [("synthetic_gold", None), ("evaluate_synthetic", None)]


def test_etl_on_cpu_standard_runtime_training_on_gpu_ml_runtime_15_4():
    from recsynth.pipeline import ETL

    job = _job("dev")
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    etl_names = {j.name for j in ETL} | {"synthetic_gold"}
    assert "job_cluster_key" not in job["tasks"][5]   # the condition needs no cluster
    for task in _job_tasks(job):
        cluster = clusters[task["job_cluster_key"]]
        assert cluster["data_security_mode"] == "SINGLE_USER"  # Horovod and Petastorm need RDDs / local files
        if task["task_key"] in etl_names:
            assert cluster["spark_version"] == ETL_RUNTIME
            assert cluster["node_type_id"] == "i3.xlarge"
        else:
            assert task["task_key"] in ("synthesize", "recommend", "synthesize_events", "evaluate_synthetic",
                                        "synthetic_recommend")
            assert cluster["spark_version"] == TRAINING_RUNTIME
            assert cluster["node_type_id"] == "g5.xlarge"
            assert cluster["spark_env_vars"]["TF_USE_LEGACY_KERAS"] == "1"


# --- entry points and parameters ---------------------------------------------------------------------
def _setup_kwargs() -> dict:
    """setup()'s literal keyword arguments, read from setup.py without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    kwargs = {}
    for keyword in call.keywords:
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            pass  # not a literal (cmdclass, packages=find_packages(...))
    return kwargs


def _console_scripts() -> dict[str, str]:
    scripts = _setup_kwargs()["entry_points"]["console_scripts"]
    return {name.strip(): target.strip() for name, target in (s.split("=", 1) for s in scripts)}


def test_wheel_artifact_is_what_the_tasks_install():
    resolved = resolve("dev", CLI_VARS["dev"])
    (artifact,) = resolved["artifacts"].values()
    assert artifact["type"] == "whl" and (ROOT / artifact["path"] / "setup.py").is_file()
    assert "--wheel-dir dist" in artifact["build"]
    resource_dir = ROOT / "resources"
    for task in _job_tasks(resolved["resources"]["jobs"][JOB]):
        (library,) = task["libraries"]
        assert set(library) == {"whl"}, "install nothing else: a PyPI pyspark or tensorflow would replace the runtime's"
        assert (resource_dir / library["whl"]).resolve().parent == ROOT / "dist"


def _parse_task(task: dict):
    """Parse a task's parameters exactly as `recsynth <params>` would, without running the job."""
    from recsynth.cli import cli

    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == _setup_kwargs()["name"]
    assert _console_scripts()[wheel_task["entry_point"]] == "recsynth.cli:main"
    params = wheel_task["parameters"]
    assert all(isinstance(p, str) for p in params)
    ctx = cli.make_context(wheel_task["entry_point"], list(params))
    name, command, rest = cli.resolve_command(ctx, [*ctx.protected_args, *ctx.args])
    sub = command.make_context(name, rest, parent=ctx)
    assert sub.params == {"force": False}
    conf = load_conf(ctx.params["env"], ctx.params["overrides"], ctx.params["conf_dir"] or ROOT / "conf")
    return ctx.params["env"], name, conf


@pytest.mark.parametrize("target", TARGETS)
def test_every_task_parses_into_the_conf_the_bundle_passes(target):
    from recsynth.pipeline import JOBS

    resolved = resolve(target, CLI_VARS[target])
    variables = {name: d["default"] for name, d in resolved["variables"].items()}
    job = resolved["resources"]["jobs"][JOB]
    gpu_workers = next(c["new_cluster"]["num_workers"] for c in job["job_clusters"]
                       if c["new_cluster"]["spark_version"] == TRAINING_RUNTIME)
    fingerprints = {"real": set(), "synthetic": set()}
    for task in _job_tasks(job):
        env, command, conf = _parse_task(task)
        job_name = command.replace("-", "_")
        assert env == "databricks"
        assert job_name in JOBS and task["task_key"] in (job_name, f"synthetic_{job_name}")
        assert conf.lake.catalog == variables["catalog"]
        assert conf.lake.root == CLI_VARS[target]["storage_root"]
        assert conf.lake.metastore_dir is None
        assert conf.tracking.uri == "databricks" and conf.tracking.experiment == variables["mlflow_experiment"]
        # one Horovod rank per GPU worker
        assert conf.synth.num_proc == conf.recs.num_proc == conf.clickstream.sequence.num_proc == gpu_workers
        on = "synthetic" if task["task_key"].startswith("synthetic_") else "real"
        assert conf.lake.clickstream == on
        fingerprints[on].add(conf.fingerprint() if on == "real" else conf.model_copy(update={
            "lake": conf.lake.model_copy(update={"clickstream": "real"})}).fingerprint())
    # every task of a run sees the same conf; the synthetic tasks differ only in lake.clickstream
    assert len(fingerprints["real"]) == 1 and fingerprints["synthetic"] == fingerprints["real"]
    assert variables["catalog"] == {"dev": "recsynth_dev", "prod": "recsynth"}[target]


# --- what the wheel brings to a cluster --------------------------------------------------------------
RUNTIME_PROVIDED = {  # DBR 15.4 LTS (standard) Python environment, import names; the ML runtime has more
    "pyspark", "py4j", "delta", "numpy", "pandas", "pyarrow", "matplotlib", "mpl_toolkits", "PIL", "cycler",
    "dateutil", "fontTools", "kiwisolver", "pyparsing", "contourpy", "packaging", "psutil", "pygments",
    "setuptools", "pkg_resources", "typing_extensions", "yaml", "six", "pytz", "scipy", "sklearn", "requests",
    "urllib3", "certifi", "idna", "charset_normalizer", "cloudpickle", "mlflow", "google", "grpc",
}
WHEEL_REQUIRED = {"pydantic", "pydantic_core", "annotated_types", "typing_inspection", "click", "rich",
                  "markdown_it", "mdurl", "yaml", "fsspec"}  # install_requires and their dependencies
OPTIONAL = {"attr"}  # rich.pretty imports attrs only where it is installed


def test_installing_the_wheel_pulls_no_spark_horovod_or_tensorflow():
    requires = [re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in _setup_kwargs()["install_requires"]]
    forbidden = {"pyspark", "delta-spark", "horovod", "tensorflow", "tensorflow-cpu", "keras", "petastorm", "pyarrow"}
    assert not forbidden & set(requires), "the Databricks runtime brings these; the wheel must not pull them"
    assert "fsspec" in requires  # every job imports it and the standard 15.4 runtime lacks it


def test_modules_a_job_imports_at_start_are_on_a_15_4_cluster():
    probe = ("import json, sys; before = set(sys.modules); import recsynth.cli, recsynth.pipeline; "
             "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    imported = set(json.loads(result.stdout.strip().splitlines()[-1]))
    third_party = {m for m in imported if m not in sys.stdlib_module_names and not m.startswith("_")
                   and m not in ("recsynth", "cython_runtime")}
    missing = sorted(third_party - RUNTIME_PROVIDED - WHEEL_REQUIRED - OPTIONAL)
    assert not missing, (f"{missing} are imported when a job starts but are neither requirements of the wheel nor "
                         "part of Databricks Runtime 15.4 LTS: import them inside the function that needs them, "
                         "or add them to install_requires in setup.py")
