"""Transformer ELMo (Peters et al. 2018, "Dissecting contextual word embeddings"): the char CNN with
highway layers, a projection and a layer norm, then a forward and a backward transformer language model.

The arithmetic is that of AllenNLP's `cnn-highway` encoder and `BidirectionalLanguageModelTransformer`:
sinusoidal positions added to the token vectors, pre-norm layers (x + attention(norm(x)), then
x + feed_forward(norm(x))) under a causal mask, and a final norm applied to the top layer only. The
backward LM reads the same positions with the mask transposed (each token sees itself and what
follows it), so no sequence is reversed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, OptionsError
from . import precision
from .char_cnn import CharCNN
from .interface import ContextualBiLM
from .options import ACTIVATIONS, char_cnn_parameters, check_fits_in_memory, check_size

MAX_CHARACTERS_PER_TOKEN = 50


@dataclass(frozen=True)
class TransformerOptions:
    """Architecture of a transformer biLM; `input_dim` is both the char projection and the model width."""

    kind: ClassVar[str] = "transformer"

    input_dim: int
    hidden_dim: int
    n_layers: int
    filters: Tuple[Tuple[int, int], ...]
    char_embedding_dim: int
    n_highway: int = 2
    n_heads: int = 8
    activation: str = "relu"
    layer_norm: bool = True
    max_characters_per_token: int = MAX_CHARACTERS_PER_TOKEN
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple((int(w), int(n)) for w, n in self.filters))
        for name in ("input_dim", "hidden_dim", "n_layers", "char_embedding_dim", "n_heads",
                     "max_characters_per_token"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OptionsError(f"option {name} must be a positive integer, found {value!r}")
        if self.input_dim % self.n_heads or self.input_dim % 2:
            raise OptionsError(f"option input_dim ({self.input_dim}) must be even and a multiple of "
                               f"n_heads ({self.n_heads})")
        if not isinstance(self.n_highway, int) or self.n_highway < 0:
            raise OptionsError(f"option n_highway must be an integer >= 0, found {self.n_highway!r}")
        if self.activation not in ACTIVATIONS:
            raise OptionsError(f"option activation must be one of {ACTIVATIONS}, found {self.activation!r}")
        if not self.filters or any(w < 1 or n < 1 or w > self.max_characters_per_token for w, n in self.filters):
            raise OptionsError(f"option filters must be [width, count] pairs with width in "
                               f"1..{self.max_characters_per_token}, found {[list(f) for f in self.filters]}")
        check_size(self.n_layers, self.n_highway, self.filters, self.max_characters_per_token)
        check_fits_in_memory(self.n_parameters, f"input_dim ({self.input_dim}), hidden_dim ({self.hidden_dim}), "
                                                f"filters ({self.n_filters} filters) and n_layers ({self.n_layers})")

    @property
    def n_filters(self) -> int:
        return sum(num for _, num in self.filters)

    @property
    def n_parameters(self) -> int:
        """Parameters of the biLM these options describe (char encoder, then both directions' layers)."""
        d, h = self.input_dim, self.hidden_dim
        layer = 4 * (d * d + d) + (d * h + h) + (h * d + d) + 2 * 2 * d
        encoder = char_cnn_parameters(self.char_embedding_dim, self.filters, self.n_highway) + self.n_filters * d + d
        return encoder + (2 * d if self.layer_norm else 0) + 2 * (self.n_layers * layer + 2 * d)

    @property
    def output_dim(self) -> int:
        return 2 * self.input_dim

    @property
    def n_output_layers(self) -> int:
        return self.n_layers + 1

    def to_dict(self) -> Dict[str, Any]:
        return {"input_dim": self.input_dim, "hidden_dim": self.hidden_dim, "n_layers": self.n_layers,
                "filters": [list(f) for f in self.filters], "char_embedding_dim": self.char_embedding_dim,
                "n_highway": self.n_highway, "n_heads": self.n_heads, "activation": self.activation,
                "layer_norm": self.layer_norm, "max_characters_per_token": self.max_characters_per_token}

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "options") -> "TransformerOptions":
        names = set(cls.__dataclass_fields__) - {"extra"}
        unknown = sorted(set(data) - names)
        if unknown:
            raise OptionsError(f"{source}: unknown transformer options {unknown}")
        try:
            return cls(**data)
        except TypeError as err:
            raise OptionsError(f"{source}: {err}") from None
        except (OptionsError, ValueError) as err:
            raise OptionsError(f"{source}: {err}") from None


class StdLayerNorm(nn.Module):
    """gamma * (x - mean) / (std + eps) + beta: AllenNLP's LayerNorm (2.x: biased std, eps 1e-13, or 1e-4
    in half precision), which the archives run with; torch's LayerNorm takes sqrt(var + eps) instead."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centered = x - x.mean(-1, keepdim=True)
        std = centered.square().mean(-1, keepdim=True).sqrt()
        eps = 1e-4 if x.dtype in (torch.float16, torch.bfloat16) else 1e-13
        return self.gamma * centered / (std + eps) + self.beta


class CharEncoder(nn.Module):
    """(U, max_chars) ids -> (U, input_dim): char CNN and highway, projection, layer norm."""

    def __init__(self, options: TransformerOptions) -> None:
        super().__init__()
        self.cnn = CharCNN(options.char_embedding_dim, options.filters, options.n_highway, options.activation)
        self.projection = nn.Linear(options.n_filters, options.input_dim)
        self.norm = StdLayerNorm(options.input_dim) if options.layer_norm else nn.Identity()
        nn.init.normal_(self.projection.weight, std=math.sqrt(1.0 / options.n_filters))
        nn.init.zeros_(self.projection.bias)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        return self.norm(precision.linear(self.cnn(char_ids), self.projection))


class TransformerLayer(nn.Module):
    """x + attention(norm(x)), then x + feed_forward(norm(x))."""

    def __init__(self, dim: int, hidden_dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.attention_norm = StdLayerNorm(dim)
        self.query, self.key, self.value, self.output = (nn.Linear(dim, dim) for _ in range(4))
        self.feed_forward_norm = StdLayerNorm(dim)
        self.feed_forward_in = nn.Linear(dim, hidden_dim)
        self.feed_forward_out = nn.Linear(hidden_dim, dim)
        for linear in (self.query, self.key, self.value, self.output, self.feed_forward_in, self.feed_forward_out):
            nn.init.xavier_uniform_(linear.weight)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, self.training)

    def _attend(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = x.shape

        def heads(linear: nn.Linear) -> torch.Tensor:
            return precision.linear(x, linear).view(batch, steps, self.n_heads, -1).transpose(1, 2)

        attended = F.scaled_dot_product_attention(heads(self.query), heads(self.key), heads(self.value),
                                                  attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0)
        return precision.linear(attended.transpose(1, 2).reshape(batch, steps, dim), self.output)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self._drop(self._attend(self.attention_norm(x), allowed))
        hidden = self._drop(torch.relu(precision.linear(self.feed_forward_norm(x), self.feed_forward_in)))
        return x + self._drop(precision.linear(hidden, self.feed_forward_out))


class TransformerLM(nn.Module):
    """One direction: every layer's output, the top one after the final norm."""

    def __init__(self, options: TransformerOptions, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(options.input_dim, options.hidden_dim, options.n_heads, dropout)
                                    for _ in range(options.n_layers))
        self.norm = StdLayerNorm(options.input_dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> List[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x, allowed)
            outputs.append(x)
        outputs[-1] = self.norm(outputs[-1])
        return outputs


def sinusoid_positions(steps: int, dim: int, device: torch.device) -> torch.Tensor:
    """(steps, dim): sin at even, cos at odd features, wavelengths from 2 pi to 10000 * 2 pi."""
    position = torch.arange(steps, device=device, dtype=torch.float32).unsqueeze(1)
    rates = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.empty(steps, dim, device=device)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates)
    return table


def attention_masks(segments: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, T, T) booleans, True = may attend, for the forward and the backward LM.

    `segments` (B, T) numbers the sequences of a row (0 = padding), so that a trainer can pack several
    sentences into one row without letting them see each other. A token attends to the tokens of its
    own sequence at or before it (forward) or at or after it (backward). Padding rows may attend
    everywhere: their outputs are dropped, but a row without any allowed key would make NaNs that
    leak into real rows through zero attention weights.
    """
    steps = segments.shape[1]
    causal = torch.ones(steps, steps, dtype=torch.bool, device=segments.device).tril()
    same = (segments.unsqueeze(2) == segments.unsqueeze(1)) & (segments > 0).unsqueeze(1)
    padding_rows = (segments == 0).unsqueeze(2)
    forward = (causal & same) | padding_rows
    backward = (causal.t() & same) | padding_rows
    return forward.unsqueeze(1), backward.unsqueeze(1)


class TransformerBiLM(ContextualBiLM):
    """Returns n_layers + 1 layers of width 2 * input_dim: the char-CNN vector twice, then [forward;
    backward] of every transformer layer. Stateless: each sentence is read on its own."""

    def __init__(self, options: TransformerOptions, dropout: float = 0.0) -> None:
        super().__init__()
        self.options = options
        self.char_cnn = CharEncoder(options)
        self.forward_lm = TransformerLM(options, dropout)
        self.backward_lm = TransformerLM(options, dropout)
        self.input_dropout = nn.Dropout(dropout)

    def contextualize(self, token_vectors: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
                      stateful: bool = False) -> torch.Tensor:
        if stateful:
            raise InputError("the transformer biLM has no state to carry between batches: "
                             "stateful=True needs an LSTM biLM")
        steps = index.shape[1]
        tokens = token_vectors[index]
        mask = torch.arange(steps, device=index.device).unsqueeze(0) < lengths.unsqueeze(1)
        positions = torch.arange(steps, device=index.device).expand_as(index)
        layers = [torch.cat([tokens, tokens], dim=-1)]
        for fwd, bwd in zip(*self.directions(tokens, positions, mask.long())):
            layers.append(torch.cat([fwd, bwd], dim=-1))
        return torch.stack(layers) * mask.unsqueeze(-1).to(tokens.dtype)

    def directions(self, tokens: torch.Tensor, positions: torch.Tensor,
                   segments: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Every layer of the forward and of the backward LM for token vectors (B, T, E), each token's
        position in its sequence (B, T) and the sequence numbers of `attention_masks` (B, T)."""
        table = sinusoid_positions(int(positions.max()) + 1 if positions.numel() else 1, self.options.input_dim,
                                   tokens.device).to(tokens.dtype)
        x = self.input_dropout(tokens + table[positions])
        forward_allowed, backward_allowed = attention_masks(segments)
        return self.forward_lm(x, forward_allowed), self.backward_lm(x, backward_allowed)
