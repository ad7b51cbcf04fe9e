"""sparkzoo: deep learning on Apache Spark.

A Horovod-on-Spark distributed trainer, a Keras model zoo and end-to-end reference
applications. Importing ``sparkzoo`` is cheap: Spark and TensorFlow load only when used.
"""

import os

# The Keras 2 API on every stack: TensorFlow >= 2.16 makes tf.keras mean Keras 3 unless this is
# set, and it reads the variable at the first `tf.keras` access (not at import), so it is set
# here, before any sparkzoo module touches tf.keras. TensorFlow 2.15 (classic stack) ignores it;
# on the current stack tf.keras then resolves to the tf_keras package.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"


def init_spark(*args, **kwargs):
    """Create or get the SparkSession sparkzoo runs on; see :func:`sparkzoo.spark.init_spark`."""
    from sparkzoo.spark import init_spark as _init_spark

    return _init_spark(*args, **kwargs)


__all__ = ["__version__", "init_spark"]
