"""The layers of training Docs, kept across epochs while the biLM is frozen.

A frozen biLM gives a Doc the same layers every epoch, but spaCy's corpus reader makes new Doc
objects each epoch, so Docs are keyed by what the biLM reads of them: their token strings,
whitespace flags and sentence starts.
"""
from __future__ import annotations

import hashlib
from typing import Any, Dict, Optional

import numpy as np

from ..errors import ElmoError

DTYPES = ("float32", "float16")


class DocCache:
    """Layers per Doc key, up to `max_mb` megabytes (2**20 bytes) of arrays, kept on the model's
    device (GPU memory when training on a GPU).

    Once full it keeps what it has and stores nothing more: training reads every Doc once per
    epoch in a new order, so evicting one Doc for another would only trade one hit for another.
    float16 halves the memory; arrays come back as float32 either way.
    """

    def __init__(self, max_mb: float, dtype: str = "float32") -> None:
        if not max_mb >= 0:
            raise ElmoError(f"train_cache_mb must be 0 (off) or a positive number of megabytes, found {max_mb}")
        if dtype not in DTYPES:
            raise ElmoError(f"train_cache_dtype must be one of {', '.join(DTYPES)}, found {dtype!r}")
        self.max_bytes = int(max_mb * 2**20)
        self.dtype = dtype
        self.nbytes = 0
        self._arrays: Dict[bytes, Any] = {}

    def __len__(self) -> int:
        return len(self._arrays)

    @staticmethod
    def key(columns: np.ndarray) -> bytes:
        """A digest of a Doc's (ORTH, IS_SPACE, SENT_START) array."""
        return hashlib.blake2b(np.ascontiguousarray(columns).tobytes(), digest_size=16).digest()

    def get(self, key: bytes) -> Optional[Any]:
        array = self._arrays.get(key)
        if array is None or self.dtype == "float32":
            return array
        return array.astype("float32")

    def put(self, key: bytes, array: Any) -> None:
        """Keep a copy of `array` if it fits (a later change to `array` does not reach the cache)."""
        if key in self._arrays:
            return
        stored = array.astype(self.dtype, copy=True)
        if self.nbytes + stored.nbytes <= self.max_bytes:
            self._arrays[key] = stored
            self.nbytes += stored.nbytes

    def clear(self) -> None:
        self._arrays.clear()
        self.nbytes = 0
