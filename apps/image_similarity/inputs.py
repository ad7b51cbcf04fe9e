"""The image-similarity app's default input: real MNIST digits written as an image folder.

Example::

    write_mnist_folder("digits", sample_rate=0.1)   # digits/{database,query}/<digit>/<row>.png
"""

from __future__ import annotations

import os
import shutil
import tempfile

import cv2
import numpy as np

from sparkzoo import fs
from sparkzoo.datasets.loaders import mnist, mnist_split_rows

SPLITS = ("database", "query")


def write_mnist_folder(
    folder: str, sample_rate: float = 1.0, seed: int = 0, test_size: int = 1000
) -> dict[str, int]:
    """Write the 5,000 real MNIST digits of ``sparkzoo.datasets.mnist_split`` as PNG files:
    ``folder/database/<digit>/<row>.png`` (the 4,000 train digits) and
    ``folder/query/<digit>/<row>.png`` (the 1,000 held out), ``<row>`` being the digit's
    position in :func:`sparkzoo.datasets.mnist`. ``sample_rate`` keeps a seeded random
    fraction of each part. ``folder`` may be local or ``hdfs://``. Returns counts per split.

    Example::

        write_mnist_folder("digits", sample_rate=0.1)   # {'database': ~400, 'query': ~100}
    """

    frame = mnist(normalize=False)
    parts = dict(zip(SPLITS, mnist_split_rows(test_size, seed), strict=True))
    rng = np.random.default_rng(seed)
    counts = {}
    local = not fs.is_hdfs(folder)
    # A remote folder is written locally first, then copied in one fs.put.
    root = fs.local_path(folder) if local else tempfile.mkdtemp(prefix="sparkzoo-digits-")
    try:
        for split, rows in parts.items():
            rows = np.sort(rows[rng.random(len(rows)) < sample_rate])
            if len(rows) == 0:
                raise ValueError(
                    f"--sample-rate {sample_rate} leaves no {split} digit of {len(parts[split])}"
                )
            for row in rows:
                label = int(frame["label"][row])
                pixels = frame["pixels"][row].reshape(28, 28).astype(np.uint8)
                target = os.path.join(root, split, str(label), f"{row:04d}.png")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if not cv2.imwrite(target, pixels):
                    raise OSError(f"cannot write {target}")
            counts[split] = len(rows)
        if not local:
            fs.put(root, folder)
    finally:
        if not local:
            shutil.rmtree(root, ignore_errors=True)
    return counts


__all__ = ["SPLITS", "write_mnist_folder"]
