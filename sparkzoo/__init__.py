"""sparkzoo: deep learning on Apache Spark.

A Horovod-on-Spark distributed trainer, a Keras model zoo and end-to-end reference
applications. Importing ``sparkzoo`` is cheap: Spark and TensorFlow load only when used.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

from sparkzoo import zipcache

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The Keras 2 API on every stack. sparkzoo's own code reaches it through sparkzoo.keras2 (the
# tf_keras package itself where installed), never through tf.keras. For users' code, which
# writes tf.keras: TensorFlow >= 2.16 makes it mean Keras 3 unless TF_USE_LEGACY_KERAS=1 routes
# it to tf_keras; it reads the variable at the first `tf.keras` access (not at import), so it
# is set here. Only where tf_keras is installed (the current stack): TensorFlow 2.15 honours the
# variable too, and without tf_keras its tf.keras then fails to load at all.
if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# In a Spark Python worker on Python < 3.12, stop PySpark's per-task re-reading of the zip
# archives on the path (about 0.09 s of CPU a task; see sparkzoo/zipcache.py).
zipcache.keep_zip_directories()

__version__ = "0.1.0"


def init_spark(*args: Any, **kwargs: Any) -> SparkSession:
    """Create or get the SparkSession sparkzoo runs on; see :func:`sparkzoo.spark.init_spark`."""
    # The package boundary: pyspark loads on the first call, not with `import sparkzoo`.
    from sparkzoo.spark import init_spark as _init_spark

    return _init_spark(*args, **kwargs)


__all__ = ["__version__", "init_spark"]
