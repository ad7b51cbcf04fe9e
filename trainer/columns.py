"""Feature and label columns: what a DataFrame column holds, checks before training, and the
conversion of an Arrow batch into the numpy arrays Keras takes.

A column may hold a numeric scalar, a fixed-length (possibly nested) numeric array, or a
Spark ML vector (turned into an array first). Every row of an array column must have the same
number of values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

_NUMERIC = {
    "ByteType",
    "ShortType",
    "IntegerType",
    "LongType",
    "FloatType",
    "DoubleType",
    "BooleanType",
    "DecimalType",
}
_INTEGER = {"ByteType", "ShortType", "IntegerType", "LongType", "BooleanType"}


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


def _element_type(data_type):
    """The innermost element type of a (nested) array type, and the nesting depth."""
    from pyspark.sql.types import ArrayType

    depth = 0
    while isinstance(data_type, ArrayType):
        data_type, depth = data_type.elementType, depth + 1
    return data_type, depth


def describe_columns(df, names: list[str], role: str) -> list[tuple[str, str, bool]]:
    """(name, kind, integer) for each column, or a :class:`ColumnError` naming what is wrong."""
    from pyspark.ml.linalg import VectorUDT

    if not names:
        raise ColumnError(f"no {role} columns given")
    fields = {f.name: f.dataType for f in df.schema.fields}
    described = []
    for name in names:
        if name not in fields:
            raise ColumnError(
                f"{role} column {name!r} is not in the DataFrame; its columns are {sorted(fields)}"
            )
        data_type = fields[name]
        if isinstance(data_type, VectorUDT):
            described.append((name, "vector", False))
            continue
        element, depth = _element_type(data_type)
        type_name = type(element).__name__
        if type_name not in _NUMERIC:
            raise ColumnError(
                f"{role} column {name!r} has type {data_type.simpleString()}; "
                "expected a number, an array of numbers or a Spark ML vector"
            )
        described.append((name, "array" if depth else "scalar", type_name in _INTEGER))
    return described


def as_array_column(df, name: str, kind: str):
    """``df`` with ``name`` as a flat array column (vectors and nested arrays flattened)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    if kind == "vector":
        return df.withColumn(name, vector_to_array(F.col(name), "float32"))
    column = F.col(name)
    _, depth = _element_type(df.schema[name].dataType)
    for _ in range(depth - 1):
        column = F.flatten(column)
    return df.withColumn(name, column) if depth > 1 else df


def bad_value_condition(name: str, kind: str):
    """A Spark condition true for rows whose column holds null or NaN."""
    from pyspark.sql import functions as F

    column = F.col(name)
    if kind == "scalar":
        return column.isNull() | F.isnan(column)
    return column.isNull() | F.exists(column, lambda x: x.isNull() | F.isnan(x))


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


@dataclass
class PreparedData:
    """A DataFrame reduced to the training columns, each a scalar or a flat array."""

    df: object
    features: list[ColumnSpec]
    labels: list[ColumnSpec]
    rows: int
    dropped_rows: int
    indicator_rows: int  # rows where the indicator column is true (the validation rows)
    weight: ColumnSpec | None = None  # per-row loss weights


def prepare_columns(
    df,
    feature_cols: list[str],
    label_cols: list[str],
    nan_policy: str = "fail",
    indicator: str | None = None,
    weight_col: str | None = None,
) -> PreparedData:
    """Check the columns and count what training needs, in one pass over the data.

    Raises :class:`ColumnError` before any training for: a missing column, a non-numeric
    column, arrays of varying length, an empty DataFrame, and null/NaN values when
    ``nan_policy="fail"`` (with ``"drop"`` such rows are dropped and counted). ``label_cols``
    may be empty (a model that computes its own loss); ``weight_col`` must hold numbers.
    """
    from pyspark.sql import functions as F

    if nan_policy not in ("fail", "drop"):
        raise ValueError(f"nan_policy must be 'fail' or 'drop', got {nan_policy!r}")
    overlap = set(feature_cols) & set(label_cols)
    if overlap:
        raise ColumnError(f"columns {sorted(overlap)} are both features and labels")
    if weight_col in (*feature_cols, *label_cols):
        raise ColumnError(f"sample weight column {weight_col!r} is also a feature or label")
    roles = {"feature": feature_cols, "label": label_cols, "sample weight": [weight_col]}
    described = {
        role: describe_columns(df, cols, role)
        for role, cols in roles.items()
        if role == "feature" or (cols and cols != [None])
    }
    for name, kind, _ in described.get("sample weight", []):
        if kind != "scalar":
            raise ColumnError(f"sample weight column {name!r} must hold one number per row")
    keep = [*feature_cols, *label_cols, *([weight_col] if weight_col else [])]
    keep += [indicator] if indicator else []
    df = df.select(*keep)
    for role in described.values():
        for name, kind, _ in role:
            if kind != "scalar":
                df = as_array_column(df, name, kind)

    all_columns = [c for role in described.values() for c in role]
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for name, kind, _ in all_columns:
        aggregates.append(F.sum(bad_value_condition(name, kind).cast("long")).alias(f"bad:{name}"))
        if kind != "scalar":
            aggregates += [
                F.min(F.size(name)).alias(f"min:{name}"),
                F.max(F.size(name)).alias(f"max:{name}"),
            ]
    if indicator:
        aggregates.append(F.sum(F.col(indicator).cast("long")).alias("indicator"))
    stats = df.agg(*aggregates).first().asDict()

    rows = stats["rows"]
    if rows == 0:
        raise ColumnError("the DataFrame is empty: there is nothing to train on")
    sizes = {}
    for name, kind, _ in all_columns:
        if kind == "scalar":
            sizes[name] = 1
            continue
        low, high = stats[f"min:{name}"], stats[f"max:{name}"]
        if low != high and not (low == -1 and stats[f"bad:{name}"]):
            raise ColumnError(
                f"column {name!r} holds arrays of {low} to {high} values; every row "
                "must have the same number"
            )
        sizes[name] = high
    bad = {name: stats[f"bad:{name}"] for name, _, _ in all_columns if stats[f"bad:{name}"]}
    dropped = 0
    if bad:
        listing = ", ".join(f"{name!r}: {count} rows" for name, count in bad.items())
        if nan_policy == "fail":
            raise ColumnError(
                f"null or NaN values in {listing} (of {rows}); clean them, or pass "
                "nan_policy='drop' to drop such rows and count them"
            )
        condition = None
        for name, kind, _ in all_columns:
            if name in bad:
                cond = bad_value_condition(name, kind)
                condition = cond if condition is None else condition | cond
        df = df.filter(~condition)
        kept = df.count()
        dropped, rows = rows - kept, kept
        if rows == 0:
            raise ColumnError(f"every row has null or NaN values ({listing}): nothing is left")

    def specs(role: str) -> list[ColumnSpec]:
        return [
            ColumnSpec(name, kind, sizes[name], False if role == "sample weight" else integer)
            for name, kind, integer in described.get(role, [])
        ]

    indicator_rows = stats.get("indicator") or 0
    if indicator and dropped:
        indicator_rows = df.filter(F.col(indicator)).count()
    weight = specs("sample weight")
    return PreparedData(
        df,
        specs("feature"),
        specs("label"),
        rows,
        dropped,
        indicator_rows,
        weight[0] if weight else None,
    )
