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

from sparkzoo.image_schema import IMAGE_FIELDS, mode_dtype


class ColumnError(ValueError):
    """A feature or label column is missing, of the wrong type or shape, or holds NaN."""


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, kind (``scalar``/``array``/``vector``/``image``) and values
    per row."""

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
        elif spec.kind == "image":
            arrays.append(image_values(column, spec))
        else:
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            flat = column.flatten().to_numpy(zero_copy_only=False)
            arrays.append(flat.astype(spec.dtype, copy=False).reshape(len(batch), spec.size))
    return arrays


def image_values(column: pa.Array | pa.ChunkedArray, spec: ColumnSpec) -> np.ndarray:
    """The pixels of an image column as ``(rows, spec.size)`` float32, in their stored order
    (what ``ImageSet.to_arrays`` gives for the same images). The bytes are read at once, not
    value by value: every image must have ``spec.size`` values of one element type.

    Raises :class:`ColumnError` naming the column and the first offending image's ``origin``
    for a null image, mixed element types, or an image of another size.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    fields = dict(zip((f.name for f in column.type), column.flatten(), strict=True))
    data, rows = fields["data"], len(column)

    def origin(i: int) -> str:
        where = f" ({fields['origin'][i].as_py()!r})" if "origin" in fields else ""
        return f"row {i}{where}"

    if data.null_count:
        first = int(np.flatnonzero(data.is_null().to_numpy(zero_copy_only=False))[0])
        raise ColumnError(
            f"image column {spec.name!r} has {data.null_count} null image(s), the first at "
            f"{origin(first)}: filter them out first (an ImageSet's undecodable files have "
            "an 'error')"
        )
    if rows == 0:
        return np.zeros((0, spec.size), np.float32)
    modes = fields["mode"].to_numpy(zero_copy_only=False)
    undecoded = np.flatnonzero(modes < 0)
    if len(undecoded):  # Spark's image source keeps a file it cannot decode with mode -1
        raise ColumnError(
            f"image column {spec.name!r} has {len(undecoded)} image(s) that were not decoded "
            f"(mode -1), the first at {origin(int(undecoded[0]))}: read them with "
            "spark.read.format('image').option('dropInvalid', True), or filter them out"
        )
    depths = modes % 8
    mixed = np.flatnonzero(depths != depths[0])
    if len(mixed):
        at = int(mixed[0])
        raise ColumnError(
            f"image column {spec.name!r}: image mode {int(modes[at])} at {origin(at)} "
            f"(first mode {int(modes[0])}); every image must have one element type"
        )
    dtype = mode_dtype(int(modes[0]))
    offset_type = np.int64 if pa.types.is_large_binary(data.type) else np.int32
    offsets = np.frombuffer(data.buffers()[1], offset_type)[data.offset : data.offset + rows + 1]
    wrong = np.flatnonzero(np.diff(offsets) != spec.size * dtype.itemsize)
    if len(wrong):
        i = int(wrong[0])
        shape = tuple(fields[f][i].as_py() for f in ("height", "width", "nChannels"))
        raise ColumnError(
            f"image column {spec.name!r}: {len(wrong)} image(s) do not have {spec.size} values, "
            f"the first at {origin(i)}: height, width, channels {shape}, "
            f"{(offsets[i + 1] - offsets[i]) // dtype.itemsize} values; resize them to the "
            "model's input first"
        )
    values = np.frombuffer(data.buffers()[2], dtype, count=rows * spec.size, offset=int(offsets[0]))
    return values.astype(np.float32).reshape(rows, spec.size)


def image_pixels(image) -> np.ndarray:
    """One image struct's values, flat, in their stored order and element type: from a dict
    (as ``mlflow.pyfunc.spark_udf`` passes a struct) or a Spark ``Row``."""
    image = image.asDict() if hasattr(image, "asDict") else image
    mode = int(image["mode"])
    dtype = mode_dtype(mode)
    if dtype is None:
        raise ColumnError(
            f"image {image.get('origin', '')!r} was not decoded (mode {mode}): read images "
            "with spark.read.format('image').option('dropInvalid', True), or filter them out"
        )
    return np.frombuffer(image["data"], dtype)


def is_image_value(value) -> bool:
    """Whether a value (a dict or a Spark ``Row``) is an image struct."""
    keys = value.keys() if isinstance(value, dict) else getattr(value, "__fields__", ())
    return set(IMAGE_FIELDS) <= set(keys)


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
