"""init_spark: master resolution, Arrow, the executors' interpreter, spark-submit."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from sparkzoo.spark import resolve_master, slot_count


def test_master_defaults_to_local_star(monkeypatch):
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    assert resolve_master() == "local[*]"


def test_spark_master_env_is_used(monkeypatch):
    monkeypatch.setenv("SPARK_MASTER", "spark://127.0.0.1:7077")
    assert resolve_master() == "spark://127.0.0.1:7077"
    assert resolve_master("local[1]") == "local[1]"


@pytest.mark.spark
def test_session_settings(spark):
    conf = spark.sparkContext.getConf()
    assert spark.sparkContext.master == "local[2]"
    assert conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.pyspark.python") == sys.executable
    assert slot_count(spark) == 2


@pytest.mark.spark
def test_executors_run_this_interpreter(spark):
    def interpreter(_):
        import sys as worker_sys

        yield worker_sys.executable

    found = spark.sparkContext.parallelize(range(2), 2).mapPartitions(interpreter).collect()
    assert set(found) == {sys.executable}


@pytest.mark.spark
def test_arrow_batches_reach_python(spark):
    import pyarrow as pa

    def double(batches):
        for batch in batches:
            yield pa.RecordBatch.from_pydict({"id": pa.compute.multiply(batch.column("id"), 2)})

    out = spark.range(10).mapInArrow(double, "id long").collect()
    assert sorted(r.id for r in out) == [2 * i for i in range(10)]


def test_zip_directories_are_left_alone_outside_spark_workers():
    import zipimport

    from sparkzoo import zipcache

    assert not zipcache.in_spark_worker()
    assert zipcache.keep_zip_directories() is False
    assert zipimport.zipimporter.invalidate_caches.__name__ != "_keep_directory"


def _zip_directory_after_invalidation(zip_folder: str):
    """In a Spark worker: whether ``importlib.invalidate_caches()`` (which PySpark calls
    before every task) kept pyspark.zip's directory, and whether a zip archive put on the path
    afterwards still imports."""

    def probe(_):
        import importlib
        import sys as worker_sys
        import zipfile
        import zipimport

        import sparkzoo  # noqa: F401  (what every sparkzoo function in a worker does first)

        archive = next(p for p in worker_sys.path if p.endswith("pyspark.zip"))
        before = zipimport._zip_directory_cache.get(archive)
        importlib.invalidate_caches()
        kept = before is not None and zipimport._zip_directory_cache.get(archive) is before
        added = f"{zip_folder}/added.zip"
        with zipfile.ZipFile(added, "w") as handle:
            handle.writestr("zipcache_probe.py", "ANSWER = 42\n")
        worker_sys.path.insert(0, added)
        yield kept, importlib.import_module("zipcache_probe").ANSWER

    return probe


@pytest.mark.spark
def test_spark_workers_keep_their_zip_directories(spark, tmp_path: Path):
    """PySpark invalidates import caches before each task; on Python < 3.12 that re-read the
    whole directory of every zip on the path (0.09 s of CPU a task). After sparkzoo is
    imported in a worker, the directories stay (Python 3.12 made the re-reading lazy)."""
    probe = _zip_directory_after_invalidation(str(tmp_path))
    [(kept, answer)] = spark.sparkContext.parallelize([0], 1).mapPartitions(probe).collect()
    assert answer == 42  # an archive added later is read
    assert kept is (sys.version_info < (3, 12))


@pytest.mark.slow
def test_spark_submit_master_wins(tmp_path: Path):
    """A master given to spark-submit reaches init_spark() untouched."""
    import subprocess

    submit = Path(sys.executable).parent / "spark-submit"
    submit = str(submit) if submit.exists() else shutil.which("spark-submit")
    assert submit, "spark-submit not found beside the interpreter or on PATH"
    script = tmp_path / "job.py"
    script.write_text(
        "from sparkzoo import init_spark\n"
        "spark = init_spark()\n"
        "print('MASTER=' + spark.sparkContext.master)\n"
        "print('ARROW=' + spark.conf.get('spark.sql.execution.arrow.pyspark.enabled'))\n"
        "spark.stop()\n"
    )
    env = {
        **__import__("os").environ,
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_MASTER": "local[2]",
    }  # spark-submit's --master must win over the env
    out = subprocess.run(
        [submit, "--master", "local[1]", "--conf", "spark.ui.enabled=false", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MASTER=local[1]" in out.stdout
    assert "ARROW=true" in out.stdout
