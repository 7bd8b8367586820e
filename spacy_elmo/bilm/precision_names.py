"""The run-time precisions by name, apart from their torch code (precision.py), so that the command line
can list them without importing torch."""
from __future__ import annotations

from typing import Any, Tuple

from ..errors import InputError

PRECISIONS: Tuple[str, ...] = ("fp32", "bf16", "int8")


def check_precision(value: Any, option: str = "precision") -> str:
    """The value if it names a precision; else one InputError naming the option and the allowed values."""
    if value not in PRECISIONS:
        raise InputError(f"{option}: unknown precision {value!r}; use one of {', '.join(PRECISIONS)}")
    return value
