"""From batches of sentences to layers: length-sorted batches, the one batch -> layers step of any biLM
(shared by the Embedder, the spaCy layer and the tests), and the per-sentence slices of a batch."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch

from ..errors import InputError
from .char_ids import CharBatch
from .interface import ContextualBiLM
from .settings import PRECISION, check_precision


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: Optional[int] = None) -> List[List[int]]:
    """Group indices into batches of similar length: sorted by length, at most `batch_size` rows and
    at most `max_tokens` padded positions each (a longer single item still gets a batch of its own)."""
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, found {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: List[List[int]] = []
    current: List[int] = []
    for i in order:
        padded = (len(current) + 1) * max(lengths[i], 1)
        if current and (len(current) >= batch_size or (max_tokens is not None and padded > max_tokens)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def split_layers(layers: torch.Tensor, lengths: np.ndarray) -> List[torch.Tensor]:
    """Per row, the (L, n, D) slice without the <S> and </S> positions."""
    return [layers[:, b, 1 : int(n) - 1] for b, n in enumerate(lengths)]


def batch_layers(bilm: ContextualBiLM, batch: CharBatch, token_vectors: Optional[torch.Tensor] = None,
                 stateful: bool = False, precision: str = PRECISION) -> torch.Tensor:
    """All layers (L, B, T', D) of a CharBatch on the biLM's device, boundaries included, zeros at padding.

    The one batch -> layers step, shared by the Embedder, the spaCy layer (under autograd when the
    biLM is fine-tuned) and the tests; `token_vectors` are char-CNN vectors of `batch.unique` a caller kept
    (made in the same `precision`). `precision` is handed to every product (fp32 under autograd)."""
    check_precision(precision)
    device = bilm.device
    if token_vectors is None:
        token_vectors = bilm.char_cnn(torch.from_numpy(batch.unique).to(device), precision)
    index, lengths = (torch.from_numpy(a).to(device) for a in (batch.index, batch.lengths))
    return bilm.contextualize(token_vectors, index, lengths, stateful=stateful, precision=precision)
