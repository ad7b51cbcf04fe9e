"""A rank's own partition as training data: kept in memory, or spilled to local disk.

The Arrow batches of the partition are converted to numpy as they arrive. While they fit in
``budget_bytes`` they stay in memory; past it, everything goes to flat files on the executor's
local disk and is read back as memory-mapped arrays, so a partition larger than memory
trains all the same. The data never leaves the executor.

numpy only: the TensorFlow engine's Spark tasks import this module (for their scratch folder)
without loading TensorFlow; the ``tf.data`` pipeline over these arrays is
:func:`sparkzoo.trainer.rank_training.make_dataset`.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np


class PartitionBuffer:
    """Collects rows column by column; ``arrays()`` returns one array per column."""

    def __init__(self, budget_bytes: int, spill_dir: str | None = None):
        self.budget_bytes = budget_bytes
        self.rows = 0
        self._chunks: list[list[np.ndarray]] = []
        self._bytes = 0
        self._spill_root = spill_dir
        self._spill_dir: str | None = None
        self._files: list = []
        self._row_shapes: list[tuple] = []
        self._dtypes: list[np.dtype] = []

    @property
    def spilled(self) -> bool:
        return self._spill_dir is not None

    def append(self, columns: list[np.ndarray]) -> None:
        if not columns or len(columns[0]) == 0:
            return
        if not self._dtypes:
            self._row_shapes = [c.shape[1:] for c in columns]
            self._dtypes = [c.dtype for c in columns]
        self.rows += len(columns[0])
        if self.spilled:
            self._write(columns)
            return
        self._chunks.append(columns)
        self._bytes += sum(c.nbytes for c in columns)
        if self._bytes > self.budget_bytes:
            self._spill()

    def _spill(self) -> None:
        root = self._spill_root or _local_dir()
        self._spill_dir = tempfile.mkdtemp(prefix="sparkzoo-partition-", dir=root)
        self._files = [
            open(os.path.join(self._spill_dir, f"column{i}.bin"), "wb")  # noqa: SIM115
            for i in range(len(self._dtypes))
        ]
        for chunk in self._chunks:
            self._write(chunk)
        self._chunks = []

    def _write(self, columns: list[np.ndarray]) -> None:
        for handle, column, dtype in zip(self._files, columns, self._dtypes, strict=True):
            handle.write(np.ascontiguousarray(column, dtype=dtype).tobytes())

    def arrays(self) -> list[np.ndarray]:
        """The collected columns (memory-mapped when spilled). Call once, after the last append."""
        if not self._dtypes:
            return []
        if not self.spilled:
            return [
                np.concatenate([chunk[i] for chunk in self._chunks])
                for i in range(len(self._dtypes))
            ]
        for handle in self._files:
            handle.close()
        return [
            np.memmap(h.name, dtype=dt, mode="r", shape=(self.rows, *shape))
            for h, dt, shape in zip(self._files, self._dtypes, self._row_shapes, strict=True)
        ]

    def close(self) -> None:
        """Remove the spill files (if any)."""
        for handle in self._files:
            handle.close()
        if self._spill_dir:
            shutil.rmtree(self._spill_dir, ignore_errors=True)


def _local_dir() -> str | None:
    """The executor's scratch space (``SPARK_LOCAL_DIRS``) or the system temp dir."""
    dirs = os.environ.get("SPARK_LOCAL_DIRS", "")
    return dirs.split(",")[0] if dirs else None


def steps_for(total_rows: int, batch_size: int, num_ranks: int) -> int:
    """Steps per epoch so the ranks together see about ``total_rows`` rows, the same on every rank."""
    return max(1, math.ceil(total_rows / (batch_size * num_ranks)))


def batch_indices(rows: int, batch_size: int, shuffle: bool, seed: int) -> Iterator[np.ndarray]:
    """Endless row indices in batches; reshuffled on every pass over the partition."""
    if rows == 0:
        raise ValueError("cannot make batches from an empty partition")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(rows) if shuffle else np.arange(rows)
        for start in range(0, rows, batch_size):
            chunk = order[start : start + batch_size]
            # wrap around (more than once when the partition holds fewer rows than half a
            # batch): every batch is full
            while len(chunk) < batch_size:
                more = rng.permutation(rows) if shuffle else np.arange(rows)
                chunk = np.concatenate([chunk, more[: batch_size - len(chunk)]])
            yield chunk
