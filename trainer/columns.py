"""Feature and label columns: what a DataFrame column holds, checks before training, and the
conversion of an Arrow batch into the numpy arrays Keras takes.

A column may hold a numeric scalar, a fixed-length (possibly nested) numeric array, a
Spark ML vector (turned into an array first), or an image: a struct of Spark's image schema
(``height``, ``width``, ``nChannels``, ``mode``, ``data``), from Spark's ``image`` source or
sparkzoo's ``ImageSet``, whose pixels go to the model as float32 in their stored order. An
image travels to Python as bytes, copied at once: an ``array<float>`` is converted value by
value, and holds four times the bytes of 8-bit pixels. Every row of an array (or image)
column must have the same number of values. The rank's side (:class:`ColumnSpec`, the batch conversion, the shapes) is
:mod:`.arrays`, which needs no pyspark; its names are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, StructType

from sparkzoo.image_schema import OPENCV_DEPTHS
from sparkzoo.trainer.arrays import (
    IMAGE_FIELDS,
    ColumnError,
    ColumnSpec,
    batch_to_arrays,
    check_shapes,
    fit_to_shapes,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "ColumnError",
    "ColumnSpec",
    "PreparedData",
    "as_array_column",
    "bad_value_condition",
    "batch_to_arrays",
    "check_shapes",
    "describe_columns",
    "fit_to_shapes",
    "is_flat_array",
    "is_image_type",
    "prepare_columns",
]

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


def _element_type(data_type):
    """The innermost element type of a (nested) array type, and the nesting depth."""
    depth = 0
    while isinstance(data_type, ArrayType):
        data_type, depth = data_type.elementType, depth + 1
    return data_type, depth


def describe_columns(df: DataFrame, names: list[str], role: str) -> list[tuple[str, str, bool]]:
    """(name, kind, integer) for each column, or a :class:`ColumnError` naming what is wrong."""
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
        if is_image_type(data_type):
            described.append((name, "image", False))
            continue
        element, depth = _element_type(data_type)
        type_name = type(element).__name__
        if type_name not in _NUMERIC:
            raise ColumnError(
                f"{role} column {name!r} has type {data_type.simpleString()}; expected a "
                "number, an array of numbers, a Spark ML vector or an image struct (Spark's "
                f"image schema: {', '.join(IMAGE_FIELDS)})"
            )
        described.append((name, "array" if depth else "scalar", type_name in _INTEGER))
    return described


def is_image_type(data_type) -> bool:
    """Whether a Spark type is an image struct: Spark's image schema (its ``data`` bytes)."""
    if not isinstance(data_type, StructType):
        return False
    fields = {f.name: f.dataType for f in data_type.fields}
    return set(IMAGE_FIELDS) <= set(fields) and isinstance(fields["data"], BinaryType)


def as_array_column(df: DataFrame, name: str, kind: str) -> DataFrame:
    """``df`` with ``name`` as a flat array column (vectors and nested arrays flattened; an
    image struct stays as it is, its bytes read in the batch)."""
    if kind == "image":
        return df
    if kind == "vector":
        return df.withColumn(name, vector_to_array(F.col(name), "float32"))
    column = F.col(name)
    _, depth = _element_type(df.schema[name].dataType)
    for _ in range(depth - 1):
        column = F.flatten(column)
    return df.withColumn(name, column) if depth > 1 else df


def is_flat_array(df: DataFrame, name: str) -> bool:
    """Whether column ``name`` of ``df`` is an array of numbers (not nested, not a vector)."""
    data_type = df.schema[name].dataType
    return isinstance(data_type, ArrayType) and _element_type(data_type)[1] == 1


# A NaN among an image's float pixels, as a pattern over ``hex(data)``: one little-endian
# value is a group of hex digits (low byte first), a NaN has every exponent bit set and a
# mantissa that is not zero (all zero: an infinity, which the lookahead leaves out). The lazy
# prefix keeps the match on value boundaries.
_NAN_PATTERNS = {
    np.dtype(np.float32): r"^(?:[0-9A-F]{8})*?(?!000080)[0-9A-F]{4}[89A-F][0-9A-F][7F]F",
    np.dtype(np.float64): r"^(?:[0-9A-F]{16})*?(?!0{12}F0)[0-9A-F]{12}F[0-9A-F][7F]F",
    np.dtype(np.float16): r"^(?:[0-9A-F]{4})*?(?!00[7F]C)[0-9A-F]{2}[7F][C-F]",
}


def _nan_in_float_pixels(column):
    """True for an image of float pixels with a NaN among them (integer images: false, and
    their bytes are not read)."""
    depth, pixels = column["mode"] % 8, F.hex(column["data"])
    condition = None
    for opencv_depth, dtype in OPENCV_DEPTHS.items():
        if dtype in _NAN_PATTERNS:
            case = (depth == opencv_depth, pixels.rlike(_NAN_PATTERNS[dtype]))
            condition = F.when(*case) if condition is None else condition.when(*case)
    return condition.otherwise(False)


def bad_value_condition(name: str, kind: str):
    """A Spark condition true for rows whose column holds null or NaN (for an image: no
    image, no pixels, or a NaN among its float pixels)."""
    column = F.col(name)
    if kind == "scalar":
        return column.isNull() | F.isnan(column)
    if kind == "image":
        return column.isNull() | column["data"].isNull() | _nan_in_float_pixels(column)
    return column.isNull() | F.exists(column, lambda x: x.isNull() | F.isnan(x))


def _value_count(name: str, kind: str):
    """A Spark expression of the values a row holds in an array or image column."""
    if kind == "image":
        column = F.col(name)
        return column["height"] * column["width"] * column["nChannels"]
    return F.size(name)


@dataclass
class PreparedData:
    """A DataFrame reduced to the training columns, each a scalar or a flat array."""

    df: DataFrame
    features: list[ColumnSpec]
    labels: list[ColumnSpec]
    rows: int
    dropped_rows: int
    indicator_rows: int  # rows where the indicator column is true (the validation rows)
    weight: ColumnSpec | None = None  # per-row loss weights


def prepare_columns(
    df: DataFrame,
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
                F.min(_value_count(name, kind)).alias(f"min:{name}"),
                F.max(_value_count(name, kind)).alias(f"max:{name}"),
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
            what = "images" if kind == "image" else "arrays"
            raise ColumnError(
                f"column {name!r} holds {what} of {low} to {high} values; every row "
                "must have the same number" + (" (resize the images)" if kind == "image" else "")
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
