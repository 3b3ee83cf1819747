"""What a value parsed from a JSON metadata document is, as type guards: JSON's numbers may be bool, NaN or
1.0, and a checker that accepts them by accident reads a wrong array."""

from __future__ import annotations

import math
from typing import Any, TypeGuard


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite number (``true`` is not one, nor NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> TypeGuard[int]:
    """An integer proper (``1.0`` and ``true`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_integral(value: Any) -> TypeGuard[int | float]:
    """An integer as JSON Schema's ``integer`` means it: ``1.0`` counts (writers in other languages emit it)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def str_list(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def int_list(value: Any, minimum: int = 0) -> TypeGuard[list[int]]:
    """A list of integers proper, each at least ``minimum``."""
    return isinstance(value, list) and all(is_int(v) and v >= minimum for v in value)
