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
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .char_cnn import CharCNN
from .interface import ContextualBiLM
from .options import TransformerOptions  # its home before options.py: still importable from here
from .precision import linear
from .settings import PRECISION


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

    def forward(self, char_ids: torch.Tensor, precision: str = PRECISION) -> torch.Tensor:
        return self.norm(linear(self.cnn(char_ids, precision), self.projection, precision))


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

    def _attend(self, x: torch.Tensor, allowed: torch.Tensor, precision: str) -> torch.Tensor:
        batch, steps, dim = x.shape

        def heads(layer: nn.Linear) -> torch.Tensor:
            return linear(x, layer, precision).view(batch, steps, self.n_heads, -1).transpose(1, 2)

        attended = F.scaled_dot_product_attention(heads(self.query), heads(self.key), heads(self.value),
                                                  attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0)
        return linear(attended.transpose(1, 2).reshape(batch, steps, dim), self.output, precision)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, precision: str = PRECISION) -> torch.Tensor:
        x = x + self._drop(self._attend(self.attention_norm(x), allowed, precision))
        hidden = self._drop(torch.relu(linear(self.feed_forward_norm(x), self.feed_forward_in, precision)))
        return x + self._drop(linear(hidden, self.feed_forward_out, precision))


class TransformerLM(nn.Module):
    """One direction: every layer's output, the top one after the final norm."""

    def __init__(self, options: TransformerOptions, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(options.input_dim, options.hidden_dim, options.n_heads, dropout)
                                    for _ in range(options.n_layers))
        self.norm = StdLayerNorm(options.input_dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, precision: str = PRECISION) -> List[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x, allowed, precision)
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
                      stateful: bool = False, precision: str = PRECISION) -> torch.Tensor:
        if stateful:
            raise InputError("the transformer biLM has no state to carry between batches: "
                             "stateful=True needs an LSTM biLM")
        steps = index.shape[1]
        tokens = token_vectors[index]
        mask = torch.arange(steps, device=index.device).unsqueeze(0) < lengths.unsqueeze(1)
        positions = torch.arange(steps, device=index.device).expand_as(index)
        layers = [torch.cat([tokens, tokens], dim=-1)]
        for fwd, bwd in zip(*self.directions(tokens, positions, mask.long(), precision)):
            layers.append(torch.cat([fwd, bwd], dim=-1))
        return torch.stack(layers) * mask.unsqueeze(-1).to(tokens.dtype)

    def directions(self, tokens: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor,
                   precision: str = PRECISION) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Every layer of the forward and of the backward LM for token vectors (B, T, E), each token's
        position in its sequence (B, T) and the sequence numbers of `attention_masks` (B, T)."""
        table = sinusoid_positions(int(positions.max()) + 1 if positions.numel() else 1, self.options.input_dim,
                                   tokens.device).to(tokens.dtype)
        x = self.input_dropout(tokens + table[positions])
        forward_allowed, backward_allowed = attention_masks(segments)
        return self.forward_lm(x, forward_allowed, precision), self.backward_lm(x, backward_allowed, precision)
