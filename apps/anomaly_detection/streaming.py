"""``anomaly_detection stream``: new points of a time series, in CSV files landing in a folder,
scored by the LSTM a batch run trained and saved (Spark Structured Streaming); the flagged
points appended to Parquet exactly once.

- :func:`point_stream`: the CSV files (``timestamp,value`` with a header: the batch run's
  NAB format) landing in a folder, as a streaming DataFrame;
- :func:`windowed`: a stateful step (``applyInPandasWithState``): the series' last
  ``window`` points are kept in the query's state, so each new point gets the window before
  it even when that window began in an earlier file; points are scaled with the training
  part's scaler, as in the batch run;
- :func:`scored`: ``KerasModel.transform`` of the saved model on that stream (the model loaded
  once per Python worker), the squared error of its forecast and the batch run's threshold;
- :func:`start`: the query, a Parquet file sink with a checkpoint (exactly once: the sink's
  log and the state are in the checkpoint); ``sparkzoo.streaming.watch`` prints its progress
  per micro-batch and stops it on SIGTERM / Ctrl-C.

Files must land in time order: a point not later than the last point already seen is left
out (a duplicate or a late point cannot get a window). Rows whose timestamp or value do not
parse are left out too.

Example::

    saved = pipeline.load_detector("out/anomaly/model")
    query = start(spark, "incoming/", "out/stream", "out/stream_checkpoint", saved)
    watch([query], "points")
    spark.read.parquet("out/stream/anomalies")
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout

from sparkzoo import fs
from sparkzoo.apps.anomaly_detection.pipeline import SavedDetector
from sparkzoo.streaming import trigger

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from pyspark.sql.streaming.state import GroupState

POINT_SCHEMA = "timestamp timestamp, value double"
WINDOW_SCHEMA = "timestamp timestamp, value double, scaled float, features array<float>"
# The series' last points (scaled) and the time of the last one, in microseconds.
STATE_SCHEMA = "last_us bigint, history array<double>"
QUERY_NAME = "anomaly_detection"


def point_stream(spark: SparkSession, source: str, max_files_per_trigger: int | None = None):
    """The points of the CSV files (``timestamp,value``, a header line) that land in folder
    ``source`` (local or hdfs://), as a streaming DataFrame; unparseable rows are dropped."""
    reader = spark.readStream.schema(POINT_SCHEMA).option("header", "true")
    if max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", int(max_files_per_trigger))
    return reader.csv(source).where("timestamp IS NOT NULL AND value IS NOT NULL")


def _window_step(window: int, scaler):
    """The ``applyInPandasWithState`` function: new points in, one row per new point that has
    ``window`` points before it (``features``: those points, scaled) out."""

    def step(
        key: tuple, frames: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        last_us, history = state.get if state.exists else (None, [])
        new = pd.concat(list(frames), ignore_index=True)
        new = new.sort_values("timestamp", kind="stable").drop_duplicates("timestamp")
        stamps = new["timestamp"].astype("datetime64[us]").astype(np.int64).to_numpy()
        if last_us is not None:
            new, stamps = new[stamps > last_us], stamps[stamps > last_us]
        if len(new) == 0:
            return
        scaled = scaler.transform(new["value"].to_numpy(np.float64)[:, None], ["value"])[:, 0]
        values = np.concatenate([np.asarray(history, np.float64), scaled])
        first = len(history)
        rows = [i for i in range(first, len(values)) if i >= window]
        state.update((int(stamps[-1]), values[-window:].tolist()))
        if rows:
            at = np.asarray(rows) - first
            yield pd.DataFrame(
                {
                    "timestamp": new["timestamp"].to_numpy()[at],
                    "value": new["value"].to_numpy()[at],
                    "scaled": values[rows].astype(np.float32),
                    "features": [values[i - window : i].astype(np.float32) for i in rows],
                }
            )

    return step


def windowed(points: DataFrame, window: int, scaler) -> DataFrame:
    """Each new point of the stream with the ``window`` points before it (scaled), across
    micro-batches and files: the state of one series, in the query's checkpoint."""
    keyed = points.withColumn("series", F.lit(0))
    return keyed.groupBy("series").applyInPandasWithState(
        _window_step(window, scaler),
        WINDOW_SCHEMA,
        STATE_SCHEMA,
        "append",
        GroupStateTimeout.NoTimeout,
    )


def scored(windows: DataFrame, saved: SavedDetector) -> DataFrame:
    """The forecaster's error for each windowed point and whether it passes the batch run's
    threshold: ``timestamp, value, expected`` (the forecast, in the series' units),
    ``error`` (squared, scaled units, as the batch run's ``points/``), ``is_anomaly``."""
    predicted = saved.fitted.transform(windows)
    error = F.pow(F.col("prediction") - F.col("scaled").cast("double"), 2)
    return predicted.select(
        "timestamp",
        "value",
        saved.scaler.inverse_column("prediction", ["value"], array=False).alias("expected"),
        error.alias("error"),
        (error > F.lit(saved.threshold)).alias("is_anomaly"),
    )


def start(
    spark: SparkSession,
    source: str,
    output: str,
    checkpoint: str,
    saved: SavedDetector,
    trigger_seconds: float | None = None,
    max_files_per_trigger: int | None = None,
    available_now: bool = False,
    all_points: bool = False,
) -> StreamingQuery:
    """Start the query: points landing in ``source`` -> ``anomalies/`` (the flagged points;
    ``points/`` with every scored point when ``all_points``) under ``output``, Parquet,
    with its checkpoint (sink log and state) in ``checkpoint``."""
    if saved.model != "lstm_forecaster":
        raise ValueError(
            f"stream scores with an lstm_forecaster; the run's model is {saved.model} (an "
            "autoencoder scores a point by the windows after it too)"
        )
    rows = scored(windowed(point_stream(spark, source, max_files_per_trigger), saved.window,
                           saved.scaler), saved)  # fmt: skip
    if not all_points:
        rows = rows.where("is_anomaly")
    writer = (
        rows.writeStream.queryName(QUERY_NAME)
        .format("parquet")
        .option("checkpointLocation", checkpoint)
        .trigger(**trigger(trigger_seconds, available_now))
    )
    # One series is one state key: one state partition, fixed in the checkpoint when the
    # query first starts (Spark's default, 200, would open 199 empty state stores a batch).
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    try:
        return writer.start(fs.join(output, "points" if all_points else "anomalies"))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)


__all__ = ["POINT_SCHEMA", "point_stream", "scored", "start", "windowed"]
