"""``object_detection stream``: the batch run's detect -> crop -> embed step on images as they
land in a folder (Spark Structured Streaming), appended to Parquet exactly once.

- :func:`image_stream`: Spark's ``binaryFile`` streaming source on a folder (local or
  ``hdfs://``), image files only, at most ``max_files_per_trigger`` new files per micro-batch;
- :func:`write_micro_batch`: per micro-batch, :func:`~.pipeline.detect_frame` (the batch
  run's step, its per-batch function ``detect_batch``: a corrupt image becomes an error row)
  into ``detections/batch=<id>``, then :func:`~.pipeline.features_of` of what was written
  into ``features/batch=<id>``; each committed by :func:`sparkzoo.streaming.commit_batch`;
- :func:`start`: the query (``foreachBatch``, its checkpoint); ``sparkzoo.streaming.watch``
  prints its progress per micro-batch and stops it on SIGTERM / Ctrl-C.

Exactly once: the checkpoint's offset log names the files of every micro-batch before it
runs; a micro-batch that did not commit is replayed with the same files and the same id, and
its output folders are written only if they are not there yet. Stop the stream at any point
and start it again with the same checkpoint: every image is in ``detections/`` once.

Example::

    query = start(spark, "incoming/", "out/", "checkpoint/", PipelineConfig())
    watch([query], "images")
    spark.read.parquet("out/features")      # + a ``batch`` column: the micro-batch id
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from sparkzoo import fs
from sparkzoo.apps.object_detection.pipeline import (
    PipelineConfig,
    detect_frame,
    features_of,
)
from sparkzoo.datasets.images import IMAGE_GLOB
from sparkzoo.streaming import commit_batch, trigger

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

# The binaryFile source's own schema (a streaming file source needs it given).
BINARY_FILE_SCHEMA = "path string, modificationTime timestamp, length bigint, content binary"
QUERY_NAME = "object_detection"


def image_stream(
    spark: SparkSession, source: str, max_files_per_trigger: int | None = None
) -> DataFrame:
    """The image files (png, jpg, ...) that land in folder ``source`` as a streaming
    DataFrame: ``path`` for local files (the Python workers read them, as in the batch run),
    ``path, content`` on other file systems (Spark's Hadoop client reads them).

    Write each file elsewhere and move it in (a rename is atomic): a file still being
    written when Spark lists the folder is read half-written and becomes an error row."""
    reader = (
        spark.readStream.format("binaryFile")
        .schema(BINARY_FILE_SCHEMA)
        .option("pathGlobFilter", IMAGE_GLOB)
    )
    if max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", int(max_files_per_trigger))
    frame = reader.load(source)
    local = urlparse(source).scheme in ("", "file")
    return frame.select("path") if local else frame.select("path", "content")


def write_micro_batch(batch: DataFrame, batch_id: int, output: str, config: PipelineConfig):
    """One micro-batch: the batch run's detection step into ``detections/batch=<id>``, its
    kept objects into ``features/batch=<id>``, each exactly once. Returns the number of
    unreadable images of the batch and a few of their errors."""
    spark = batch.sparkSession
    slots = max(1, spark.sparkContext.defaultParallelism)
    if batch.rdd.getNumPartitions() < slots:  # a few small files come as one split
        batch = batch.repartition(slots)
    detections, _ = commit_batch(
        fs.join(output, "detections"),
        batch_id,
        lambda path: detect_frame(batch, config).write.parquet(path),
    )
    written = spark.read.parquet(detections)
    commit_batch(
        fs.join(output, "features"),
        batch_id,
        lambda path: features_of(written).write.parquet(path),
    )
    errors = written.where("error IS NOT NULL").select("error").limit(5).collect()
    return [row.error for row in errors]


def start(
    spark: SparkSession,
    source: str,
    output: str,
    checkpoint: str,
    config: PipelineConfig,
    trigger_seconds: float | None = None,
    max_files_per_trigger: int | None = None,
    available_now: bool = False,
    say=print,
) -> StreamingQuery:
    """Start the streaming query: images landing in ``source`` -> ``detections/`` and
    ``features/`` under ``output`` (Parquet, one ``batch=<id>`` folder per micro-batch),
    its progress in ``checkpoint``. Unreadable images are reported through ``say``."""

    def write(batch: DataFrame, batch_id: int) -> None:
        errors = write_micro_batch(batch, batch_id, output, config)
        for error in errors:
            say(f"batch {batch_id}: unreadable image, kept as an error row: {error}")

    fs.makedirs(output)
    return (
        image_stream(spark, source, max_files_per_trigger)
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(write)
        .option("checkpointLocation", checkpoint)
        .trigger(**trigger(trigger_seconds, available_now))
        .start()
    )


__all__ = ["BINARY_FILE_SCHEMA", "image_stream", "start", "write_micro_batch"]
