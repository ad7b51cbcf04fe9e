"""Arrow columns from numpy and back, and schemas declared once: the one place every
executor-side step (the trainer's feed and transform, the image and text pipelines, the apps)
builds its Arrow batches.

- :func:`list_array`: rows of equal width (a 2-D array) or of any width (a list of arrays,
  ``None`` for a missing row) as an Arrow ``list<...>`` column, one copy of the values;
- :func:`to_arrow`: numpy values (or Python lists) as an Arrow array of a given type;
- :func:`to_numpy`: an Arrow column as numpy: ``(rows, width)`` for a list column of equal
  widths, a 1-D array otherwise (objects for strings, bytes and structs);
- :func:`collect_batches`: a DataFrame's rows on the driver as Arrow record batches, binary
  values as they are;
- :func:`spark_schema`: an Arrow schema as Spark's ``StructType``, so a step declares its
  output schema once, in Arrow, and hands Spark the converted one; a list whose items are
  declared non-null (:func:`dense_list`, as a model's outputs are) becomes an array Spark
  copies without a null check per value.

Example::

    list_array(np.ones((2, 3)))                 # [[1, 1, 1], [1, 1, 1]] as list<float>
    to_numpy(batch.column("pixels"))            # (rows, 784) float32
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import ArrayType, StructType

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def list_array(
    values: np.ndarray | Sequence[np.ndarray | None], dtype: Any = np.float32
) -> pa.ListArray:
    """A ``list<dtype>`` Arrow array: one row per row of a 2-D ``values``, or per array of a
    sequence (flattened; ``None`` gives a null row). The values are copied once.

    Example::

        list_array(np.zeros((4, 84)))                        # 4 rows of 84 floats
        list_array([np.ones(3), None, np.ones(1)], np.int32)  # [[1, 1, 1], null, [1]]
    """
    if isinstance(values, np.ndarray) and values.ndim >= 1:
        rows, width = len(values), int(np.prod(values.shape[1:]))
        flat = np.ascontiguousarray(values.reshape(rows, width), dtype)
        offsets = np.arange(rows + 1, dtype=np.int32) * flat.shape[1]
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1)))
    missing = np.array([v is None for v in values], bool)
    present = [np.asarray(v, dtype).reshape(-1) for v in values if v is not None]
    sizes = np.array([0 if v is None else np.size(v) for v in values], np.int64)
    offsets = np.zeros(len(sizes) + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    flat = np.concatenate(present) if present else np.zeros(0, dtype)
    mask = np.append(missing, False) if missing.any() else None
    return pa.ListArray.from_arrays(pa.array(offsets, mask=mask), pa.array(flat))


def dense_list(value_type: pa.DataType) -> pa.ListType:
    """A ``list`` type whose items are never null (each row may still be): what a model's
    numeric outputs are. Spark copies such an array without asking each value if it is null:
    measured on the ``ssd_lite.scenes`` detector's 8,505 floats a row, 9 % more rows/s.

    Example::

        pa.schema([("scores", dense_list(pa.float32()))])
    """
    return pa.list_(pa.field("item", value_type, nullable=False))


def to_arrow(values: Any, type_: pa.DataType) -> pa.Array:
    """``values`` (numpy, or a sequence of Python values or numpy rows, ``None`` for nulls) as
    an Arrow array of ``type_``; numpy rows of a list type go through :func:`list_array`.

    Example::

        to_arrow(np.array([0.5, 1.0]), pa.float64())
    """
    numeric = isinstance(values, np.ndarray) and values.dtype != object
    if pa.types.is_list(type_):
        if numeric or any(isinstance(v, np.ndarray) for v in values):
            array = list_array(
                values if numeric else list(values), type_.value_type.to_pandas_dtype()
            )
            if array.type != type_ and not array.null_count:  # items declared non-null
                array = pa.ListArray.from_arrays(array.offsets, array.values, type=type_)
            return array
    elif numeric:
        return pa.array(values, type_)
    return pa.array(list(values), type_)


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as numpy: a list column whose rows all have one width becomes
    ``(rows, width)``; any other column a 1-D array (objects for strings, binary, structs and
    ragged lists).

    Example::

        to_numpy(pa.array([[1.0, 2.0], [3.0, 4.0]]))      # array([[1., 2.], [3., 4.]])
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        rows = len(column)
        if rows and column.null_count == 0:
            offsets = column.offsets.to_numpy()
            widths = np.diff(offsets)
            if (widths == widths[0]).all():
                values = column.values.slice(offsets[0], offsets[-1] - offsets[0])
                return values.to_numpy(zero_copy_only=False).reshape(rows, int(widths[0]))
        return np.array(
            [None if v is None else np.asarray(v) for v in column.to_pylist()], dtype=object
        )
    if pa.types.is_struct(column.type) or pa.types.is_binary(column.type):
        return np.array(column.to_pylist(), dtype=object)
    return column.to_numpy(zero_copy_only=False)


def collect_batches(df: DataFrame) -> list[pa.RecordBatch]:
    """``df``'s rows on the driver as Arrow record batches.

    ``collect()`` would have the driver's JVM pickle each row, and its pickler writes a binary
    value as a string and grows a buffer by doubling: a resnet18's 45 MB of weights took
    several times that and ran the default 1 GB driver out of heap. Arrow hands the bytes over
    as they are. ``toArrow`` is Spark 4's; Spark 3.5 has the same under ``_collect_as_arrow``
    (what its ``toPandas`` uses).
    """
    if hasattr(df, "toArrow"):
        return df.toArrow().to_batches()
    return df._collect_as_arrow()


def spark_schema(schema: pa.Schema) -> StructType:
    """Spark's ``StructType`` for an Arrow schema (the one declaration of a step's output).

    Example::

        spark_schema(pa.schema([("score", pa.float64())]))   # StructType([... DoubleType()])
    """
    converted = from_arrow_schema(schema)
    for field, arrow_field in zip(converted.fields, schema, strict=True):
        field.dataType = _item_nullability(field.dataType, arrow_field.type)
    return converted


def _item_nullability(data_type, arrow_type: pa.DataType):
    """``data_type`` with each array's ``containsNull`` as the Arrow list declares its items
    (PySpark's conversion makes every array's items nullable)."""
    if isinstance(data_type, ArrayType) and pa.types.is_list(arrow_type):
        element = _item_nullability(data_type.elementType, arrow_type.value_type)
        return ArrayType(element, arrow_type.value_field.nullable)
    return data_type


__all__ = ["dense_list", "list_array", "spark_schema", "to_arrow", "to_numpy"]
