"""Time-series windows on Spark: rolling windows to ``features``/``label`` arrays, scaling fitted
on the training part only, and splits that respect time.

:func:`make_windows` orders the rows by time (a distributed sort), numbers them, cuts them into
a training, a validation and a test part by position in time, fits the scaler on the training
rows, and builds every window inside one part, so no window straddles a boundary and nothing
from a later part leaks into an earlier one. Windows are built in blocks of consecutive rows
(each block carries the next ``window + horizon - 1`` rows with it), so the work is spread
over the executors rather than gathered on one.

Example::

    from sparkzoo.datasets.windows import make_windows

    w = make_windows(df, time_col="time", value_cols=["load"], window=48, horizon=1,
                     splits=(0.7, 0.15, 0.15), scaling="standard")
    w.train.show()            # start, end, features (48 floats), label (1 float)
    w.scaler.inverse(predictions, ["load"])   # back to the original units
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, NumericType, StructField, StructType

from sparkzoo import fs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SCALINGS = ("standard", "minmax", "none")
TARGETS = ("next", "window")
SPLIT_NAMES = ("train", "validation", "test")
_FORMAT = "sparkzoo.scaler"


@dataclass(frozen=True)
class Scaler:
    """Per-column ``(x - center) / scale``: standard (mean, standard deviation) or min-max
    (minimum, range) scaling, fitted on the training rows. A constant column gets scale 1.

    Example::

        scaler.transform(np.array([[20000.0]]), ["load"])
        scaler.inverse(model.predict(x), ["load"])
    """

    kind: str
    columns: tuple[str, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]

    def _params(self, columns: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
        names = list(self.columns if columns is None else columns)
        missing = [c for c in names if c not in self.columns]
        if missing:
            raise ValueError(f"the scaler was not fitted on {missing}; it has {self.columns}")
        at = [self.columns.index(c) for c in names]
        return np.array([self.center[i] for i in at]), np.array([self.scale[i] for i in at])

    def _apply(self, values, columns, inverse: bool) -> np.ndarray:
        center, scale = self._params(columns)
        array = np.atleast_1d(np.asarray(values, np.float64))
        width = len(center)
        if array.shape[-1] % width:
            raise ValueError(
                f"the last axis has {array.shape[-1]} values, not a multiple of the "
                f"{width} columns {list(columns or self.columns)}"
            )
        # The trailing axis runs over the columns cyclically (time-major flat windows).
        grouped = array.reshape(*array.shape[:-1], array.shape[-1] // width, width)
        out = grouped * scale + center if inverse else (grouped - center) / scale
        return out.reshape(array.shape)

    def transform(self, values, columns: Sequence[str] | None = None) -> np.ndarray:
        """Scale ``values`` (last axis: ``columns``, repeated for flat windows)."""
        return self._apply(values, columns, inverse=False)

    def inverse(self, values, columns: Sequence[str] | None = None) -> np.ndarray:
        """Undo the scaling: model outputs back in the units of ``columns``."""
        return self._apply(values, columns, inverse=True)

    def inverse_column(self, column, columns: Sequence[str] | None = None, array: bool = True):
        """A Spark column with the scaling undone: ``array`` of values over ``columns`` (cyclic,
        like a flat label), or a single number (one column)."""
        center, scale = self._params(columns)
        col = F.col(column) if isinstance(column, str) else column
        if not array:
            if len(center) != 1:
                raise ValueError("a scalar column can be unscaled for one column only")
            return col * float(scale[0]) + float(center[0])
        scales = F.array(*[F.lit(float(s)) for s in scale])
        centers = F.array(*[F.lit(float(c)) for c in center])
        width = len(center)
        return F.transform(
            col,
            lambda x, i: (
                x * F.element_at(scales, i % width + 1) + F.element_at(centers, i % width + 1)
            ),
        )

    def to_dict(self) -> dict:
        return {
            "format": _FORMAT,
            "kind": self.kind,
            "columns": list(self.columns),
            "center": list(self.center),
            "scale": list(self.scale),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a sparkzoo scaler (format {data.get('format')!r})")
        return cls(
            data["kind"], tuple(data["columns"]), tuple(data["center"]), tuple(data["scale"])
        )

    def save(self, uri: str) -> None:
        """Write the fitted scaler as JSON (atomically), to serve the model later."""
        fs.write_bytes(uri, json.dumps(self.to_dict()).encode())

    @classmethod
    def load(cls, uri: str) -> Scaler:
        return cls.from_dict(json.loads(fs.read_bytes(uri)))


@dataclass
class Windows:
    """The result of :func:`make_windows`: one DataFrame of windows per part, and what made them.

    Each DataFrame has ``start`` and ``end`` (the time of the window's first row and of its
    last label row), ``features`` (``window x len(value_cols)`` floats, time-major) and
    ``label`` (``horizon x len(target_cols)`` floats, or the target window for
    ``target="window"``). ``parts`` holds, per part, its rows and first and last time.
    """

    train: DataFrame
    validation: DataFrame
    test: DataFrame
    scaler: Scaler
    window: int
    horizon: int
    target: str
    value_cols: tuple[str, ...]
    target_cols: tuple[str, ...]
    parts: dict[str, dict]
    _indexed: object = None

    def unpersist(self) -> None:
        """Release the cached, numbered rows the three DataFrames are built from."""
        if self._indexed is not None:
            self._indexed.unpersist()


def _split_sizes(rows: int, splits: Sequence[float]) -> list[int]:
    if len(splits) not in (2, 3) or any(f < 0 for f in splits):
        raise ValueError(
            f"splits must be 2 or 3 non-negative fractions (train, validation[, test]), got {splits}"
        )
    if len(splits) == 3 and abs(sum(splits) - 1.0) > 1e-9:
        raise ValueError(f"the three splits must add up to 1, got {sum(splits)}")
    if sum(splits[:2]) > 1.0 + 1e-9:
        raise ValueError(f"train + validation fractions exceed 1: {splits}")
    train = int(rows * splits[0])
    validation = int(rows * splits[1])
    return [train, validation, rows - train - validation]


def _check_columns(df: DataFrame, time_col: str, value_cols: Sequence[str]) -> None:
    fields = {f.name: f.dataType for f in df.schema.fields}
    for name in [time_col, *value_cols]:
        if name not in fields:
            raise ValueError(f"column {name!r} is not in the DataFrame; it has {sorted(fields)}")
    for name in value_cols:
        if not isinstance(fields[name], NumericType):
            raise ValueError(
                f"value column {name!r} has type {fields[name].simpleString()}; expected numbers"
            )


def _numbered(df: DataFrame, time_col: str) -> DataFrame:
    """``df`` sorted by time with ``_i``: the row's position 0..n-1 (cached)."""
    # A distributed sort; then the position is the row's place within its sorted partition
    # plus the rows of the partitions before it. Cached, so both passes see the same order.
    ordered = (
        df.orderBy(time_col)
        .withColumn("_pid", F.spark_partition_id())
        .withColumn("_mid", F.monotonically_increasing_id())
        .persist()
    )
    stats = sorted(
        ordered.groupBy("_pid")
        .agg(F.min("_mid").alias("first"), F.count("*").alias("rows"))
        .collect()
    )
    shift, before = [], 0
    for row in stats:
        shift.extend([F.lit(row["_pid"]), F.lit(row["first"] - before)])
        before += row["rows"]
    shifts = F.create_map(*shift)
    numbered = ordered.withColumn("_i", F.col("_mid") - shifts[F.col("_pid")]).drop("_pid", "_mid")
    return numbered, ordered


def _scaler_aggregates(value_cols: Sequence[str], scaling: str, is_train) -> list:
    """Aggregates over the training rows only (``is_train``) that fit the scaler."""
    if scaling == "none":
        return []
    first, second = (F.mean, F.stddev_pop) if scaling == "standard" else (F.min, F.max)
    train = [F.when(is_train, F.col(c)) for c in value_cols]
    return [first(c) for c in train] + [second(c) for c in train]


def _scaler_from(values: Sequence[float], value_cols: Sequence[str], scaling: str) -> Scaler:
    k = len(value_cols)
    if scaling == "none":
        return Scaler("none", tuple(value_cols), (0.0,) * k, (1.0,) * k)
    first, second = [float(v) for v in values[:k]], [float(v) for v in values[k:]]
    if scaling == "standard":
        center, scale = first, second
    else:
        center, scale = first, [hi - lo for lo, hi in zip(first, second, strict=True)]
    # A constant column would divide by zero; scale 1 keeps it (centred) instead.
    scale = [s if s > 0 else 1.0 for s in scale]
    return Scaler(scaling, tuple(value_cols), tuple(center), tuple(scale))


def _windows_of_block(
    pdf: pd.DataFrame,
    time_col: str,
    value_cols: Sequence[str],
    target_at: Sequence[int],
    window: int,
    horizon: int,
    target: str,
    stride: int,
    block_rows: int,
) -> pd.DataFrame:
    """Executor side: all windows that start in one block (whose rows come with the next
    ``span - 1`` rows of the part)."""
    span = window + horizon if target == "next" else window
    no_times = pdf[time_col].iloc[:0].to_numpy()
    empty = pd.DataFrame(
        {
            "start": no_times,
            "end": no_times,
            "features": pd.Series([], dtype=object),  # lists: Arrow needs object columns
            "label": pd.Series([], dtype=object),
        }
    )
    pdf = pdf.sort_values("_j")
    first = int(pdf["_block"].iloc[0]) * block_rows
    positions = pdf["_j"].to_numpy()
    if len(pdf) < span:
        return empty
    if not np.array_equal(positions, np.arange(first, first + len(pdf))):
        raise RuntimeError(f"rows of block starting at {first} are not consecutive")
    values = pdf[list(value_cols)].to_numpy(np.float32)
    views = np.lib.stride_tricks.sliding_window_view(values, span, axis=0)  # (n, cols, span)
    starts = np.arange(len(views))
    keep = (starts < block_rows) & ((first + starts) % stride == 0)
    views = views[keep]
    if not len(views):
        return empty
    features = views[:, :, :window].transpose(0, 2, 1).reshape(len(views), -1)
    targets = views[:, list(target_at), :]
    labels = targets[:, :, window:] if target == "next" else targets
    labels = labels.transpose(0, 2, 1).reshape(len(views), -1)
    times = pdf[time_col].to_numpy()
    chosen = starts[keep]
    return pd.DataFrame(
        {
            "start": times[chosen],
            "end": times[chosen + span - 1],
            "features": list(features),
            "label": list(labels),
        }
    )


def make_windows(
    df: DataFrame,
    time_col: str,
    value_cols: str | Iterable[str],
    window: int,
    horizon: int = 1,
    target: str = "next",
    target_cols: str | Iterable[str] | None = None,
    splits: Sequence[float] = (0.7, 0.15, 0.15),
    scaling: str = "standard",
    stride: int = 1,
    block_rows: int = 8192,
) -> Windows:
    """Rolling windows of one time series (one row per time, ``value_cols`` measured then).

    - ``window``: rows per input window; ``horizon``: rows to predict after it
      (``target="next"``), or ``target="window"``: the label is the window itself (of
      ``target_cols``), for autoencoders.
    - ``target_cols``: the columns labels are taken from (default: ``value_cols``).
    - ``splits``: fractions of the rows, in time order, for training, validation and test (the
      test part is the rest when two are given). Windows never cross from one part to another.
    - ``scaling``: ``"standard"``, ``"minmax"`` or ``"none"``, fitted on the training rows only
      and applied to every part; ``Windows.scaler`` undoes it.
    - ``stride``: keep windows starting every ``stride`` rows of a part.

    Raises ``ValueError`` naming the problem for a missing or non-numeric column, nulls or NaN
    in a value column, repeated times, or a non-empty part too short for one window.
    """
    value_cols = [value_cols] if isinstance(value_cols, str) else list(value_cols)
    target_cols = (
        value_cols
        if target_cols is None
        else [target_cols]
        if isinstance(target_cols, str)
        else list(target_cols)
    )
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if window < 1 or horizon < 1 or stride < 1:
        raise ValueError(
            f"window, horizon and stride must be >= 1, got {window}, {horizon}, {stride}"
        )
    if not value_cols:
        raise ValueError("no value columns given")
    unknown = [c for c in target_cols if c not in value_cols]
    if unknown:
        raise ValueError(f"target columns {unknown} are not among the value columns {value_cols}")
    _check_columns(df, time_col, value_cols)
    span = window + horizon if target == "next" else window
    block_rows = max(int(block_rows), span)

    base = df.select(time_col, *value_cols)
    checks = base.agg(
        F.count("*").alias("rows"),
        F.countDistinct(time_col).alias("times"),
        F.sum(F.col(time_col).isNull().cast("int")).alias("null_times"),
        *[
            F.sum((F.col(c).isNull() | F.isnan(c)).cast("int")).alias(f"bad_{i}")
            for i, c in enumerate(value_cols)
        ],
    ).first()
    rows = checks["rows"]
    for i, name in enumerate(value_cols):
        if checks[f"bad_{i}"]:
            raise ValueError(f"value column {name!r} has {checks[f'bad_{i}']} null or NaN values")
    if checks["null_times"]:
        raise ValueError(f"time column {time_col!r} has {checks['null_times']} null values")
    if checks["times"] != rows:
        raise ValueError(
            f"time column {time_col!r} has repeated values ({rows} rows, {checks['times']} "
            "distinct times): one series needs one row per time"
        )
    sizes = _split_sizes(rows, splits)
    for name, size in zip(SPLIT_NAMES, sizes, strict=True):
        if 0 < size < span:
            raise ValueError(
                f"the {name} part has {size} rows, fewer than one window needs ({span})"
            )
    if sizes[0] == 0:
        raise ValueError(f"the train part is empty ({rows} rows, splits {tuple(splits)})")

    numbered, cached = _numbered(base, time_col)
    starts = [0, sizes[0], sizes[0] + sizes[1]]
    part = F.when(F.col("_i") < starts[1], 0).when(F.col("_i") < starts[2], 1).otherwise(2)
    numbered = numbered.withColumn("_part", part)
    # One pass: the scaler from the training rows, and each part's first and last time.
    times = [
        agg(F.when(F.col("_part") == index, F.col(time_col)))
        for index in range(3)
        for agg in (F.min, F.max)
    ]
    fitted = numbered.agg(*times, *_scaler_aggregates(value_cols, scaling, F.col("_part") == 0))
    fitted = list(fitted.first())
    scaler = _scaler_from(fitted[6:], value_cols, scaling)
    scaled = numbered.select(
        time_col,
        "_i",
        "_part",
        *[
            ((F.col(c) - F.lit(center)) / F.lit(scale)).alias(c)
            for c, center, scale in zip(value_cols, scaler.center, scaler.scale, strict=True)
        ],
    )

    time_type = df.schema[time_col].dataType
    schema = StructType(
        [
            StructField("start", time_type),
            StructField("end", time_type),
            StructField("features", ArrayType(FloatType())),
            StructField("label", ArrayType(FloatType())),
        ]
    )
    target_at = [value_cols.index(c) for c in target_cols]

    def build(pdf: pd.DataFrame) -> pd.DataFrame:
        return _windows_of_block(
            pdf, time_col, value_cols, target_at, window, horizon, target, stride, block_rows
        )

    frames, parts = [], {}
    for index, (name, size, start) in enumerate(zip(SPLIT_NAMES, sizes, starts, strict=True)):
        rows_of_part = scaled.where(F.col("_part") == index).withColumn(
            "_j", F.col("_i") - F.lit(start)
        )
        block = (F.col("_j") / block_rows).cast("long")
        # The first span-1 rows of a block also go to the block before, to finish its windows.
        halo = (F.col("_j") % block_rows < span - 1) & (block > 0)
        blocks = F.when(halo, F.array(block, block - 1)).otherwise(F.array(block))
        frames.append(
            rows_of_part.withColumn("_block", F.explode(blocks))
            .groupBy("_block")
            .applyInPandas(build, schema)
        )
        parts[name] = {"rows": size, "first_row": start}
    for index, name in enumerate(SPLIT_NAMES):
        parts[name]["first_time"], parts[name]["last_time"] = fitted[2 * index : 2 * index + 2]
    return Windows(
        train=frames[0],
        validation=frames[1],
        test=frames[2],
        scaler=scaler,
        window=window,
        horizon=horizon,
        target=target,
        value_cols=tuple(value_cols),
        target_cols=tuple(target_cols),
        parts=parts,
        _indexed=cached,
    )


__all__ = ["SCALINGS", "Scaler", "Windows", "make_windows"]
