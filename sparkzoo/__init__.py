"""sparkzoo: deep learning on Apache Spark.

A Horovod-on-Spark distributed trainer, a Keras model zoo and end-to-end reference
applications. Importing ``sparkzoo`` is cheap: Spark and TensorFlow load only when used.
"""

__version__ = "0.1.0"


def init_spark(*args, **kwargs):
    """Create or get the SparkSession sparkzoo runs on; see :func:`sparkzoo.spark.init_spark`."""
    from sparkzoo.spark import init_spark as _init_spark

    return _init_spark(*args, **kwargs)


__all__ = ["__version__", "init_spark"]
