"""How a biLM is run (precision, batch sizes, the token cache) and the defaults of those settings, apart
from the torch code that uses them, so that the command line can show them without importing torch.
The Embedder, the spaCy layer and `embed` take their defaults from here."""
from __future__ import annotations

from typing import Any, Tuple

from ..errors import InputError

PRECISIONS: Tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
PRECISION = PRECISIONS[0]
BATCH_SIZE = 64
"""Sentences (rows) per forward pass."""
MAX_BATCH_TOKENS = 4096
"""Padded positions per forward pass, so memory stays bounded for long sentences."""
CACHE_SIZE = 20_000
"""Char-CNN vectors of distinct tokens kept across batches."""


def check_precision(value: Any, option: str = "precision") -> str:
    """The value if it names a precision; else one InputError naming the option and the allowed values."""
    if value not in PRECISIONS:
        raise InputError(f"{option}: unknown precision {value!r}; use one of {', '.join(PRECISIONS)}")
    return value
