"""Keep a Spark Python worker from re-reading its zip archives at every task (Python < 3.12).

Before each task, PySpark's worker calls ``importlib.invalidate_caches()``. On Python 3.10 and
3.11 that makes every ``zipimporter`` on the path re-read its archive's whole directory at
once, and a Spark worker has many: one per package imported from ``pyspark.zip`` and
``py4j-*.zip``, and one for the ``spark-core`` jar that Spark puts on ``PYTHONPATH``. Measured
here: 0.09 s of CPU per task, every task, in every Python worker (py-spy: 12 % of an image
decoding job's worker CPU). Python 3.12 made the invalidation lazy (CPython gh-103200).

Those archives do not change while a worker lives (Spark does not let a file it ships change
under the same name), so in a Spark worker on Python < 3.12 the invalidation is skipped for
zip archives; a newly added archive still gets its own fresh importer. Nothing changes
outside Spark workers or on Python >= 3.12. :mod:`sparkzoo` does this when it is imported,
which every sparkzoo function running in a worker does first.
"""

from __future__ import annotations

import sys
import zipimport


def _keep_directory(self: zipimport.zipimporter) -> None:
    """The archive's directory, read when the importer was made, stays as it is."""


def in_spark_worker() -> bool:
    """Whether this process is a PySpark Python worker (it has started a task)."""
    files = sys.modules.get("pyspark.files")
    return bool(files and getattr(files.SparkFiles, "_is_running_on_worker", False))


def keep_zip_directories() -> bool:
    """Skip re-reading zip archives at each task, in a Spark worker on Python < 3.12.

    Returns whether it did."""
    if sys.version_info >= (3, 12) or not in_spark_worker():
        return False
    zipimport.zipimporter.invalidate_caches = _keep_directory  # type: ignore[method-assign]
    return True


__all__ = ["in_spark_worker", "keep_zip_directories"]
