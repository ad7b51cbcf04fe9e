"""The sparkzoo console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkzoo.cli import build_parser
from sparkzoo.info import Component, format_report, stack_for

from conftest import HAS_HOROVOD, run_python

SPARKZOO = str(Path(sys.executable).parent / "sparkzoo")


def test_report_names_problems():
    report = format_report(
        [
            Component("TensorFlow", "2.15.1"),
            Component("Horovod", "0.28.1", problem="built without Gloo"),
        ]
    )
    assert "PROBLEM: built without Gloo" in report
    assert report.splitlines()[-1] == "problems: Horovod"


def test_report_all_good():
    assert format_report([Component("Python", "3.11.7")]).endswith(
        "all components present and built correctly"
    )


def test_missing_component_says_missing():
    assert "MISSING" in format_report([Component("Java", None, problem="no java")])


def test_unknown_subcommand_is_an_error():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["frobnicate"])


@pytest.mark.slow
def test_info_reports_the_verified_stack():
    out = subprocess.run([SPARKZOO, "info", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    comps = {c["name"]: c for c in json.loads(out.stdout)}
    hvd = comps["Horovod"]
    if HAS_HOROVOD:  # the classic stack
        assert comps["TensorFlow"]["version"] == "2.15.1"
        assert comps["Keras"]["version"].startswith("2.15")
        assert hvd["version"] == "0.28.1"
        assert "frameworks: tensorflow" in hvd["detail"] and "controllers: gloo" in hvd["detail"]
        assert comps["Engine"]["version"] == "horovod"
        assert comps["PySpark"]["version"].startswith("3.5.")
    else:  # the current stack: no Horovod, and that is no problem there
        assert comps["TensorFlow"]["version"].startswith("2.21.")
        assert comps["Keras"]["version"].startswith("2.21")
        assert comps["Keras"]["detail"].startswith("tf.keras = tf_keras")
        assert hvd["version"] is None and "make setup" in hvd["detail"]
        assert comps["Engine"]["version"] == "tf (MultiWorkerMirroredStrategy)"
        assert comps["PySpark"]["version"].startswith("4.")
    assert comps["Java"]["version"] and comps["MLflow"]["version"] and comps["OpenCV"]["version"]
    assert all(c["ok"] for c in comps.values())


@pytest.mark.slow
def test_info_flags_a_missing_java(tmp_path):
    env = {"PATH": str(tmp_path), "JAVA_HOME": str(tmp_path / "nojava")}
    out = subprocess.run(
        [sys.executable, "-m", "sparkzoo", "info"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 1
    assert "Java" in out.stdout and "PROBLEM: no java" in out.stdout


@pytest.mark.skipif(HAS_HOROVOD, reason="the classic stack has Horovod")
def test_check_without_horovod_names_the_classic_set_up_before_starting_spark():
    out = subprocess.run([SPARKZOO, "check"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "Horovod is not installed" in out.stderr and "`make setup`" in out.stderr
    assert "Spark" not in out.stdout


@pytest.mark.skipif(HAS_HOROVOD, reason="the classic stack has Horovod")
def test_horovod_code_without_horovod_names_the_classic_set_up():
    from sparkzoo.trainer.horovod_ring import HorovodMissingError, plan_ranks

    with pytest.raises(HorovodMissingError, match="`make setup`"):
        plan_ranks(["127.0.0.1"])


def test_tf_keras_is_the_keras_2_api_on_either_stack():
    # sparkzoo sets TF_USE_LEGACY_KERAS=1 where tf_keras is installed (the current stack),
    # and leaves TensorFlow 2.15's own Keras 2 alone on the classic one.
    out = run_python(
        "import sparkzoo, tensorflow as tf; print(tf.keras.__name__, tf.keras.layers.Dense)"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    expected = "keras.api._v2.keras" if HAS_HOROVOD else "tf_keras.api._v2.keras"
    assert out.stdout.split()[0] == expected


def test_info_knows_both_stacks():
    assert stack_for((3, 11)).setup == "make setup"
    assert stack_for((3, 12)).setup == "make setup-current"
    assert stack_for((3, 10)) is None


@pytest.mark.slow
@pytest.mark.horovod
def test_check_runs_an_allreduce_on_local_spark():
    out = subprocess.run(
        [SPARKZOO, "check", "--np", "2", "--master", "local[2]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "rank 0/2" in out.stdout and "rank 1/2" in out.stdout
    assert out.stdout.strip().endswith("OK")


@pytest.mark.slow
@pytest.mark.horovod
def test_check_refuses_more_ranks_than_slots():
    out = subprocess.run(
        [SPARKZOO, "check", "--np", "4", "--master", "local[2]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert "4 Horovod ranks" in out.stderr and "2 task slots" in out.stderr


@pytest.mark.slow
def test_info_flags_a_horovod_built_without_tensorflow(tmp_path):
    # A Horovod install whose TensorFlow extension library is absent, as after a build
    # that ran before TensorFlow was installed.
    (tmp_path / "horovod" / "tensorflow").mkdir(parents=True)
    (tmp_path / "horovod" / "__init__.py").write_text("__version__ = '0.28.1'\n")
    dist = tmp_path / "horovod-0.28.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: horovod\nVersion: 0.28.1\n")
    out = subprocess.run(
        [sys.executable, "-m", "sparkzoo", "info", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert out.returncode == 1
    hvd = next(c for c in json.loads(out.stdout) if c["name"] == "Horovod")
    assert "built without TensorFlow" in hvd["problem"]


@pytest.mark.slow
def test_demo_trains_lenet_on_mnist_and_records_the_run(tmp_path):
    # A shell with no tracking URI set: MLflow's set_tracking_uri, called by tests earlier in
    # the session, exports MLFLOW_TRACKING_URI to every process started after it.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run(
        [SPARKZOO, "demo", "--epochs", "3", "--master", "local[2]"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    epochs = [line for line in out.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    accuracy = float(out.stdout.split("held-out accuracy: ")[1].split("%")[0])
    assert accuracy > 90.0  # three epochs; the full demo (20 epochs) reaches about 97 %
    # MLflow's own default store, so `mlflow ui` in the same folder shows the run
    assert (tmp_path / "mlflow.db").exists()
    assert "browse it: mlflow ui\n" in out.stdout
    run_id = out.stdout.split("MLflow run ")[1].split()[0]

    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["num_workers"] == "2"
