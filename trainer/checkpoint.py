"""Per-epoch checkpoints in the store: ``<store>/<run_name>/checkpoints/``.

Each checkpoint is one ``.npz`` file holding the model's weights and the optimizer's state,
plus ``latest.json`` naming the newest one and the epochs it completed. Both are written
atomically (temporary name, then rename) by rank 0, so a crash mid-write leaves the previous
checkpoint in force. Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from sparkzoo import fs


@dataclass(frozen=True)
class Checkpoint:
    epoch: int  # epochs completed
    model_weights: list[np.ndarray]
    optimizer_weights: list[np.ndarray]
    history: dict


class CheckpointStore:
    def __init__(self, run_dir: str, keep: int = 2):
        self.dir = fs.join(run_dir, "checkpoints")
        self.keep = keep

    def save(self, epoch: int, model_weights, optimizer_weights, history: dict) -> str:
        buffer = io.BytesIO()
        arrays = {f"model_{i}": w for i, w in enumerate(model_weights)}
        arrays |= {f"optimizer_{i}": w for i, w in enumerate(optimizer_weights)}
        np.savez(buffer, **arrays)
        name = f"epoch-{epoch:05d}.npz"
        fs.write_bytes(fs.join(self.dir, name), buffer.getvalue())
        latest = {
            "epoch": epoch,
            "file": name,
            "history": history,
            "model_arrays": len(model_weights),
            "optimizer_arrays": len(optimizer_weights),
        }
        fs.write_bytes(fs.join(self.dir, "latest.json"), json.dumps(latest).encode())
        for old in [
            f for f in fs.listdir(self.dir) if f.startswith("epoch-") and f.endswith(".npz")
        ][: -self.keep]:
            fs.delete(fs.join(self.dir, old))
        return name

    def _latest_info(self) -> dict | None:
        path = fs.join(self.dir, "latest.json")
        return json.loads(fs.read_bytes(path)) if fs.exists(path) else None

    def load(self) -> Checkpoint | None:
        info = self._latest_info()
        if info is None:
            return None
        with np.load(io.BytesIO(fs.read_bytes(fs.join(self.dir, info["file"])))) as data:
            model = [data[f"model_{i}"] for i in range(info["model_arrays"])]
            optimizer = [data[f"optimizer_{i}"] for i in range(info["optimizer_arrays"])]
        return Checkpoint(info["epoch"], model, optimizer, info.get("history", {}))
