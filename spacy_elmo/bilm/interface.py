"""What every biLM offers its users (Embedder, spaCy layer, trainer, CLI), whichever architecture it has.

A biLM maps character ids to L = n_output_layers layers of width output_dim: layer 0 is the
context-free char-CNN vector (repeated to output_dim), each further layer holds the forward and
backward halves side by side. The char CNN is exposed on its own so that callers can cache the
vectors of frequent tokens and hand them to `contextualize`. Building and loading a biLM of either kind
is loading.py's job.
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar, Dict, Protocol

import torch
from torch import nn

from .settings import PRECISION



class BiLMOptions(Protocol):
    """The hyper-parameters of a biLM, as far as its users need them."""

    kind: ClassVar[str]
    max_characters_per_token: int

    @property
    def output_dim(self) -> int: ...

    @property
    def n_output_layers(self) -> int: ...

    def to_dict(self) -> Dict[str, Any]: ...


class ContextualBiLM(nn.Module, abc.ABC):
    """A biLM: `char_cnn` (U, max_chars) ids -> (U, E) token vectors, then `contextualize` -> layers.

    `supports_state` says whether `stateful=True` is possible (the LSTM carries its state from one
    batch to the next); a biLM without state refuses it with an InputError.
    """

    options: BiLMOptions
    char_cnn: nn.Module
    supports_state: ClassVar[bool] = False

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def output_dim(self) -> int:
        return self.options.output_dim

    @property
    def n_output_layers(self) -> int:
        return self.options.n_output_layers

    def reset_state(self) -> None:
        """Forget the state kept by stateful calls (nothing to forget for a stateless biLM)."""

    @abc.abstractmethod
    def contextualize(self, token_vectors: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
                      stateful: bool = False, precision: str = PRECISION) -> torch.Tensor:
        """Layers (L, B, T, D) from char-CNN vectors (U, E) of the distinct tokens that `index` (B, T)
        points into; `lengths` (B,) counts <S> and </S>; positions at or after a row's length are zeros.
        `precision` is that of the products (bilm/precision.py), fp32 under autograd."""

    def forward(self, char_ids: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
                stateful: bool = False, precision: str = PRECISION) -> torch.Tensor:
        return self.contextualize(self.char_cnn(char_ids, precision), index, lengths, stateful, precision)
