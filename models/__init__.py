"""The sparkzoo model zoo (``sparkzoo.models``).

Keras model families, their registry and model cards. This package depends on
TensorFlow/Keras only: it never imports pyspark or horovod, so a model can be built,
trained and served anywhere (``tests/test_layout.py`` checks it).
"""
