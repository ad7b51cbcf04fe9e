"""Feature and label columns as a rank sees them: what each column holds
(:class:`ColumnSpec`), and the conversion of an Arrow batch into the numpy arrays Keras takes.

numpy and pyarrow only, so the processes that train (Horovod ranks, the TensorFlow engine's
child processes) and serve (the MLflow pyfunc model) import it without pyspark; the DataFrame
side (what a column holds, the checks before training) is :mod:`.columns`, which re-exports
these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


class ColumnError(ValueError):
    """A feature or label column is missing, of the wrong type or shape, or holds NaN."""


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, kind (``scalar``/``array``/``vector``) and values per row."""

    name: str
    kind: str
    size: int
    integer: bool

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int64 if self.integer else np.float32)


def batch_to_arrays(batch: pa.RecordBatch, specs: list[ColumnSpec]) -> list[np.ndarray]:
    """The columns of an Arrow batch as numpy arrays: ``(rows,)`` for scalars, ``(rows, size)``
    for arrays."""
    arrays = []
    for spec in specs:
        column = batch.column(spec.name)
        if spec.kind == "scalar":
            values = column.to_numpy(zero_copy_only=False)
            arrays.append(values.astype(spec.dtype, copy=False))
        else:
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            flat = column.flatten().to_numpy(zero_copy_only=False)
            arrays.append(flat.astype(spec.dtype, copy=False).reshape(len(batch), spec.size))
    return arrays


def fit_to_shapes(
    arrays: list[np.ndarray], shapes: list[tuple], role: str, names: list[str]
) -> list[np.ndarray]:
    """Arrange column arrays into the model's inputs (or outputs) of the given per-row shapes.

    One column per tensor: each column is reshaped to its tensor. Several columns and one
    tensor: the columns are concatenated (e.g. scalar columns into a feature vector). A label
    with one value per row against a wider output (a class id for softmax scores) stays a
    vector of ids; one with a value per step of a ``(steps, classes)`` output (a sequence
    model's target ids) becomes ``(rows, steps)``.
    """
    rows = len(arrays[0])
    flat = [a.reshape(rows, -1) for a in arrays]
    if len(shapes) != len(arrays):
        if len(shapes) != 1:
            raise ColumnError(
                f"{len(names)} {role} columns {names} cannot feed a model with "
                f"{len(shapes)} {role} tensors"
            )
        flat = [np.concatenate(flat, axis=1) if len(flat) > 1 else flat[0]]
    fitted = []
    for values, shape in zip(flat, shapes, strict=True):
        if role == "label" and values.shape[1] == 1 and math.prod(shape) != 1:
            fitted.append(values[:, 0])
        elif role == "label" and _class_ids_per_step(values.shape[1], shape):
            fitted.append(values.reshape((rows, *shape[:-1])))
        else:
            fitted.append(values.reshape((rows, *shape)))
    return fitted


def _class_ids_per_step(size: int, shape: tuple) -> bool:
    """A label of one class id per position of a ``(steps..., classes)`` output (a sequence
    model's targets for sparse categorical cross-entropy)."""
    return len(shape) > 1 and size == math.prod(shape[:-1]) and size != math.prod(shape)


def check_shapes(specs: list[ColumnSpec], shapes: list[tuple], role: str) -> None:
    """Raise when the columns' values per row cannot fill the model's tensors."""
    names = [s.name for s in specs]
    sizes = [s.size for s in specs]
    needed = [math.prod(shape) for shape in shapes]
    if len(shapes) == len(specs):
        for spec, need, shape in zip(specs, needed, shapes, strict=True):
            if spec.size != need and not (
                role == "label" and (spec.size == 1 or _class_ids_per_step(spec.size, shape))
            ):
                raise ColumnError(
                    f"{role} column {spec.name!r} has {spec.size} values per row but "
                    f"the model's {role} tensor has shape {shape} ({need} values)"
                )
    elif len(shapes) == 1:
        if sum(sizes) != needed[0] and not (role == "label" and sum(sizes) == 1):
            raise ColumnError(
                f"{role} columns {names} have {sum(sizes)} values per row together "
                f"but the model's {role} tensor has shape {shapes[0]}"
            )
    else:
        raise ColumnError(
            f"{len(specs)} {role} columns {names} cannot feed a model with "
            f"{len(shapes)} {role} tensors"
        )
