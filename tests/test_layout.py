"""The package layout, the dependency rule and the imports a reader can see."""

from __future__ import annotations

import ast
import json
import tomllib

from conftest import REPO, run_python

FOLDERS = {
    "sparkzoo": "sparkzoo",
    "models": "sparkzoo.models",
    "trainer": "sparkzoo.trainer",
    "datasets": "sparkzoo.datasets",
    "apps": "sparkzoo.apps",
    "bench": "sparkzoo.bench",
    "tune": "sparkzoo.tune",
}


def _packages_on_disk() -> set[str]:
    found = set()
    for folder, namespace in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((namespace, *rel)))
    return found


def test_every_package_folder_is_installed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _packages_on_disk()
    for namespace, folder in config["package-dir"].items():
        assert FOLDERS[folder] == namespace


def test_the_five_reference_apps_exist():
    apps = {p.name for p in (REPO / "apps").iterdir() if (p / "__init__.py").exists()}
    assert {
        "object_detection",
        "anomaly_detection",
        "fraud",
        "recommendation",
        "image_similarity",
    } <= apps


def test_importing_models_pulls_in_neither_pyspark_nor_horovod():
    code = (
        "import sys, json, sparkzoo.models\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyspark', 'horovod'))))"
    )
    result = run_python(code, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_models_source_never_imports_pyspark_or_horovod():
    offenders = []
    for path in (REPO / "models").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(REPO)}: {n}"
                for n in names
                if n.split(".")[0] in ("pyspark", "horovod")
            ]
    assert offenders == []


def test_importing_sparkzoo_is_cheap():
    code = (
        "import sys, sparkzoo\n"
        "print(','.join(m for m in ('tensorflow', 'pyspark', 'horovod') if m in sys.modules))"
    )
    result = run_python(code, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


# ---- imports you can see (issue 18) ---------------------------------------------------------
# stdlib, numpy/pandas/pyarrow, sparkzoo's own modules and the heavy libraries a module uses
# (TensorFlow, OpenCV, scikit-learn, pyspark, MLflow...) are imported at the top of it. An
# import inside a function is allowed only where it is a real boundary, each place by name
# ("path:function", methods and nested functions by qualified name), with why:
#   package boundary     a package (or the CLI) stays cheap to import; the name loads on use
#   executor             the function runs in a Spark task / Horovod rank that imports the
#                        module without what the function needs (or must not load it)
#   child process        the function runs in a child process of its own
#   optional dependency  not installed everywhere (Horovod: classic stack only), or a heavy
#                        library that one function of a widely imported module needs
# Folders checked against LAZY_IMPORTS (apps/: APPS_LAZY_IMPORTS).
FOLDERS_CHECKED = ("sparkzoo", "models", "trainer", "datasets", "bench", "tune", "apps")
# The target for the whole library, apps/ included.
LIBRARY_BUDGET = 80
REASON_KINDS = ("package boundary", "executor", "child process", "optional dependency")

LAZY_IMPORTS: dict[str, str] = {
    # sparkzoo/
    "sparkzoo/__init__.py:init_spark": "package boundary: `import sparkzoo` loads no pyspark",
    "sparkzoo/cli.py:cmd_check": "package boundary: the subcommand's Spark and Horovod self-test "
    "load when it runs, not for `sparkzoo --help`",
    "sparkzoo/cli.py:cmd_demo": "package boundary: the demo app (TensorFlow) loads when the "
    "subcommand runs, not for `sparkzoo --help`",
    "sparkzoo/cli.py:cmd_serve": "package boundary: MLflow, TensorFlow and the served model's "
    "code load when the subcommand runs, not for `sparkzoo --help`",
    "sparkzoo/keras2.py:module": "package boundary: TensorFlow loads with the first Keras "
    "attribute used, not with `import sparkzoo.keras2`",
    "trainer/mirrored_runner.py:run_in_strategy_scope": "child process: TensorFlow loads in "
    "the worker's own process, not on the driver that builds the runner",
    "trainer/estimator.py:KerasEstimator._start_tracking": "optional dependency: MLflow (the "
    "[mlflow] extra) loads only when a run is tracked",
    "trainer/pyfunc.py:_add_tensorflow_flavour": "optional dependency: importing "
    "mlflow.tensorflow makes TensorFlow resolve tf.keras for the whole process; only when a "
    "model is saved",
    "sparkzoo/info.py:_tensorflow": "optional dependency: probes TensorFlow (an extra) and "
    "reports it missing or broken instead of raising",
    "sparkzoo/info.py:_horovod": "optional dependency: probes Horovod's TensorFlow extension "
    "(classic stack only) and reports instead of raising",
    # models/
    "models/registry.py:_ensure_loaded": "package boundary: the family modules (TensorFlow) "
    "load on the first registry call, not with `import sparkzoo.models`",
    "models/deepbit.py:pca_sign_hash": "optional dependency: scikit-learn (~1 s) for this "
    "baseline only; every rank that builds a zoo model imports all family modules",
    "models/vae.py:pca_reconstruction_mse": "optional dependency: scikit-learn (~1 s) for this "
    "baseline only; every rank that builds a zoo model imports all family modules",
    "models/detection/boxes.py:iou_tf": "optional dependency: the one TensorFlow function of a "
    "numpy module that OpenCV detectors and Spark tasks import without TensorFlow",
    "models/detection/detector.py:KerasDetector.__init__": "executor: ssd/yolo bring "
    "TensorFlow; Spark tasks unpickling an OpenCV detector import this module without it",
    "models/detection/detector.py:MTCNNDetector.detect_batch": "executor: mtcnn (TensorFlow) "
    "loads where the pickled detector runs, a Spark task, on first use",
    # trainer/
    "trainer/backends.py:openvino_graph": "optional dependency: TensorFlow's graph freezing, "
    "only where a model is converted for OpenVINO",
    "trainer/backends.py:inference_function": "package boundary: the backends module is "
    "imported with the object-detection app's settings and KerasModel's Params, TensorFlow "
    "only where a model is traced",
    "trainer/estimator.py:engine_functions": "optional dependency: Horovod's training code, "
    "for engine='horovod' only (classic stack)",
    "trainer/horovod_ring.py:plan_ranks": "optional dependency: Horovod, after "
    "require_horovod() has named the fix where it is missing",
    "trainer/horovod_ring.py:RendezvousServer.__init__": "optional dependency: Horovod's "
    "rendezvous server (classic stack only)",
    "trainer/horovod_ring.py:_forget_traced_world_size": "executor: runs in the rank; Horovod "
    "(classic stack only) brings TensorFlow",
    "trainer/horovod_ring.py:horovod_ring": "executor: runs in the barrier task; the module is "
    "also imported without Spark or Horovod (TensorFlow children, for RankInfo)",
    "trainer/selftest.py:_allreduce_partition": "executor: runs in the barrier tasks; `sparkzoo "
    "check` imports the module on a driver that needs neither Horovod nor TensorFlow",
    # datasets/
    "datasets/loaders.py:_pmdarima_datasets": "optional dependency: pmdarima brings statsmodels "
    "and matplotlib (seconds) for the time-series loaders only; every loader imports the module",
    # bench/
    "bench/trainer.py:main": "executor: the Horovod ranks import this module for the functions "
    "they run; the estimator (MLflow, Spark ML) stays out of them",
    "bench/trainer.py:_estimator_speed": "executor: the Horovod ranks import this module for "
    "the functions they run; the estimator (MLflow, Spark ML) stays out of them",
    "bench/trainer.py:_numpy_in_rank": "executor: runs in a Horovod rank; Horovod is on the "
    "classic stack only",
    "bench/trainer.py:_tiny_job": "executor: runs in a Horovod rank; Horovod is on the classic "
    "stack only",
    "bench/trainer.py:_horovod_spark_run": "optional dependency: horovod.spark, for the "
    "comparison on the classic stack only",
}
_HELP_BOUNDARY = (
    "package boundary: the app's pipeline (TensorFlow, Spark) loads when a command runs, not "
    "for `python -m sparkzoo.apps.<name> --help`"
)
_NO_PYSPARK_FOR_HELP = (
    "package boundary: apps/common.py is what every app's --help loads; pyspark loads when a "
    "command starts Spark"
)
APPS_LAZY_IMPORTS: dict[str, str] = {
    **{
        f"apps/{app}/__main__.py:_pipeline": _HELP_BOUNDARY
        for app in (
            "anomaly_detection",
            "fraud",
            "image_similarity",
            "object_detection",
            "recommendation",
            "text_classification",
            "transfer_learning",
            "vae",
        )
    },
    "apps/object_detection/__main__.py:stream": _HELP_BOUNDARY,
    "apps/anomaly_detection/__main__.py:stream": _HELP_BOUNDARY,
    "apps/common.py:_spark_context": _NO_PYSPARK_FOR_HELP,
    "apps/common.py:_stop_spark": _NO_PYSPARK_FOR_HELP,
    "apps/common.py:_end_spark_submit": _NO_PYSPARK_FOR_HELP,
    "apps/common.py:start_spark": _NO_PYSPARK_FOR_HELP,
    "apps/common.py:run_notebook": "package boundary: nbclient and nbformat load when a "
    "notebook runs, not with every app's command line",
}


def function_local_imports(path) -> list[tuple[str, int]]:
    """``(qualified function name, line)`` of each import whose nearest enclosing scope is a
    function (methods and nested functions by their qualified names)."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: list[str], in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, [*scope, child.name], True)
            elif isinstance(child, ast.ClassDef):
                visit(child, [*scope, child.name], False)
            else:
                if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                    found.append((".".join(scope), child.lineno))
                visit(child, scope, in_function)

    visit(ast.parse(path.read_text()), [], False)
    return found


def _library_lazy_imports() -> dict[str, dict[str, list[int]]]:
    """folder -> {"path:function": [lines]} over every library folder."""
    out: dict[str, dict[str, list[int]]] = {}
    for folder in FOLDERS_CHECKED:
        places: dict[str, list[int]] = {}
        for path in sorted((REPO / folder).rglob("*.py")):
            for function, line in function_local_imports(path):
                places.setdefault(f"{path.relative_to(REPO)}:{function}", []).append(line)
        out[folder] = places
    return out


def _counts(found: dict[str, dict[str, list[int]]]) -> str:
    per_folder = {folder: sum(map(len, places.values())) for folder, places in found.items()}
    total = sum(per_folder.values())
    listing = ", ".join(f"{folder}/ {n}" for folder, n in per_folder.items())
    return f"{total} function-local imports in the library ({listing}); target < {LIBRARY_BUDGET}"


def test_function_local_imports_are_allowed_by_name():
    found = _library_lazy_imports()
    allowed = LAZY_IMPORTS | APPS_LAZY_IMPORTS
    checked = {place: lines for f in FOLDERS_CHECKED for place, lines in found[f].items()}
    unexplained = [f"{place} (line {lines[0]})" for place, lines in checked.items()
                   if place not in allowed]  # fmt: skip
    assert not unexplained, (
        "imports inside functions that are not a listed boundary: move them to the top of the "
        f"module, or add the place to LAZY_IMPORTS with its reason: {unexplained}; "
        + _counts(found)
    )
    everywhere = {place for places in found.values() for place in places}
    stale = sorted(set(allowed) - everywhere)
    assert not stale, f"LAZY_IMPORTS names places without such an import: {stale}"
    total = sum(len(lines) for places in found.values() for lines in places.values())
    assert total < LIBRARY_BUDGET, _counts(found)


def test_every_boundary_says_why():
    for table, kinds in (
        (LAZY_IMPORTS, REASON_KINDS),
        (APPS_LAZY_IMPORTS, REASON_KINDS),
    ):
        for place, reason in table.items():
            assert reason.split(":")[0] in kinds and reason.split(":", 1)[1].strip(), place


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` (top-level names) a fresh interpreter has loaded after ``code``."""
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(modules)!r})))"
    )
    result = run_python(probe, cwd=REPO.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sparkzoo_help_loads_no_tensorflow():
    code = (
        "from sparkzoo.cli import main\n"
        "for argv in (['--help'], ['models', '--help'], ['check', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass"
    )
    assert _loaded_after(code, ("tensorflow", "keras", "pyspark", "horovod")) == []


def test_package_imports_stay_cheap():
    heavy = ("tensorflow", "pyspark", "horovod", "mlflow", "cv2", "sklearn")
    packages = (
        "sparkzoo.models",
        "sparkzoo.models.detection",
        "sparkzoo.trainer",
        "sparkzoo.datasets",
    )
    for package in packages:
        assert _loaded_after(f"import {package}", heavy) == [], package


def test_what_the_spark_tasks_of_the_tf_engine_import_loads_no_tensorflow():
    # The barrier task passes the rank function to its child pickled: it imports only these.
    code = "import sparkzoo.trainer.tf_launcher, sparkzoo.trainer.feed"
    assert _loaded_after(code, ("tensorflow", "keras", "horovod", "mlflow")) == []


def test_child_processes_load_no_pyspark():
    # What a TensorFlow worker's child process imports: its entry module and, with its job,
    # the tf engine's training code; a local Horovod rank's entry where Horovod is installed.
    code = (
        "import importlib.util\n"
        "from sparkzoo.trainer.tf_child import run\n"
        "import sparkzoo.trainer.tf_training, sparkzoo.trainer.tf_ring\n"
        "if importlib.util.find_spec('horovod') is not None:\n"
        "    from sparkzoo.trainer.local_rank import rank_main"
    )
    assert _loaded_after(code, ("pyspark", "py4j", "mlflow")) == []


# The helpers every app, recipe and benchmark shares, each defined in one module only.
SHARED_HELPERS = {
    "hamming_distance": "models/retrieval.py",
    "cosine_distance": "models/retrieval.py",
    "map_at_k": "models/retrieval.py",
    "mean_average_precision_at_k": "models/retrieval.py",
    "leave_one_out_map": "models/retrieval.py",
    "nearest": "datasets/index.py",
    "duplicate_pairs": "datasets/index.py",
    "load_image": "datasets/images.py",
    "png_bytes": "datasets/images.py",
    "contact_sheet": "datasets/images.py",
    "read_file": "datasets/images.py",
    "worker_model": "trainer/inference.py",
    "map_batches": "trainer/inference.py",
    "configure_threads": "trainer/threads.py",
    "list_array": "sparkzoo/arrow.py",
    "mode_dtype": "sparkzoo/image_schema.py",
    "opencv_mode": "sparkzoo/image_schema.py",
}


def test_each_shared_helper_is_defined_once():
    defined: dict[str, list[str]] = {}
    for folder in FOLDERS_CHECKED:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    defined.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    wrong = {
        name: defined.get(name, [])
        for name, home in SHARED_HELPERS.items()
        if defined.get(name, []) != [home]
    }
    assert not wrong, f"shared helpers defined elsewhere than their one home: {wrong}"
