"""The search space: a dict of name → distribution, in Optuna's objects or a short form.

Short forms: a list is categorical (``[16, 32, 64]``); a tuple is ``("uniform", low, high)``,
``("loguniform", low, high)`` or ``("int", low, high)`` (``("int", low, high, step)`` too). Optuna's
own ``FloatDistribution``, ``IntDistribution`` and ``CategoricalDistribution`` pass through.

For a :class:`~sparkzoo.trainer.KerasEstimator` target, the key ``model_params`` holds a nested
dict of the same form: its values are keyword arguments of the model builder. Inside Optuna the
nested names are flattened as ``model_params.<name>``; :func:`nest` turns a trial's flat
parameters back into the user's shape.
"""

from __future__ import annotations

import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

MODEL_PARAMS = "model_params"
_NESTED_PREFIX = MODEL_PARAMS + "."


def parse_space(space: dict[str, Any]) -> dict[str, BaseDistribution]:
    """The flat Optuna space of ``space``; a ``ValueError`` names the key of a bad entry."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"space must be a non-empty dict of name -> distribution, got {space!r}")
    flat: dict[str, BaseDistribution] = {}
    for name, value in space.items():
        if name == MODEL_PARAMS:
            if not isinstance(value, dict) or not value:
                raise ValueError(
                    f"space[{MODEL_PARAMS!r}] must be a non-empty dict of builder argument -> "
                    f"distribution, got {value!r}"
                )
            for inner, inner_value in value.items():
                flat[_NESTED_PREFIX + inner] = distribution(f"{MODEL_PARAMS}.{inner}", inner_value)
        else:
            flat[name] = distribution(name, value)
    return flat


def distribution(name: str, value: Any) -> BaseDistribution:
    """One entry of the space as an Optuna distribution."""
    if isinstance(value, BaseDistribution):
        return value
    if isinstance(value, list):
        if not value:
            raise ValueError(f"space[{name!r}]: a categorical list needs at least one choice")
        return CategoricalDistribution(value)
    if isinstance(value, tuple) and value and value[0] in ("uniform", "loguniform", "int"):
        kind, *bounds = value
        if len(bounds) not in (2, 3) or (len(bounds) == 3 and kind != "int"):
            raise ValueError(f"space[{name!r}]: ({kind!r}, low, high) expected, got {value!r}")
        low, high = bounds[0], bounds[1]
        if not all(isinstance(b, (int, float)) and math.isfinite(b) for b in bounds):
            raise ValueError(f"space[{name!r}]: bounds must be finite numbers, got {value!r}")
        if low > high:
            raise ValueError(f"space[{name!r}]: low {low} is above high {high}")
        if kind == "int":
            return IntDistribution(
                int(low), int(high), step=int(bounds[2]) if len(bounds) == 3 else 1
            )
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"space[{name!r}]: a log-uniform range needs low > 0, got {low}")
        return FloatDistribution(float(low), float(high), log=kind == "loguniform")
    raise ValueError(
        f"space[{name!r}] = {value!r}: use a list (categorical), ('uniform', low, high), "
        "('loguniform', low, high), ('int', low, high) or an optuna.distributions object"
    )


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """A trial's flat parameters in the user's shape (``model_params`` nested)."""
    params: dict[str, Any] = {}
    for name, value in flat.items():
        if name.startswith(_NESTED_PREFIX):
            params.setdefault(MODEL_PARAMS, {})[name[len(_NESTED_PREFIX) :]] = value
        else:
            params[name] = value
    return params


def grid(space: dict[str, BaseDistribution]) -> dict[str, list]:
    """The grid of a space for Optuna's ``GridSampler``: every entry must be categorical or an
    integer range (taken whole)."""
    values: dict[str, list] = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            values[name] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise ValueError(
                f"algorithm='grid' needs a list of values (or an int range) for {name!r}, "
                f"got {dist!r}"
            )
    return values


def grid_size(values: dict[str, list]) -> int:
    return math.prod(len(v) for v in values.values())
