"""Context-independent token vectors: char embedding, convolutions with max-pool, highway, projection."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .char_ids import N_CHARACTERS, PADDING_CHAR
from .options import LstmOptions
from .precision import conv1d, linear
from .settings import PRECISION

PADDING_ID = PADDING_CHAR + 1


class Highway(nn.Module):
    """y = g * relu(x W_t + b_t) + (1 - g) * x with g = sigmoid(x W_carry + b_carry).

    bilm-tf's convention: despite its name, `W_carry` makes the gate on the nonlinear branch.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, dim)
        self.carry = nn.Linear(dim, dim)

    def reset_parameters(self) -> None:
        std = math.sqrt(1.0 / self.transform.in_features)
        for linear, bias in ((self.transform, 0.0), (self.carry, -2.0)):
            nn.init.normal_(linear.weight, std=std)
            nn.init.constant_(linear.bias, bias)

    def forward(self, x: torch.Tensor, precision: str = PRECISION) -> torch.Tensor:
        gate = torch.sigmoid(linear(x, self.carry, precision))
        return gate * torch.relu(linear(x, self.transform, precision)) + (1 - gate) * x


class CharCNN(nn.Module):
    """Maps (U, max_chars) character ids to (U, P) token vectors; id 0 reads a frozen zero row.

    Without `projection_dim` (or with one equal to the filter count) the highway output is the vector.
    """

    def __init__(self, char_embedding_dim: int, filters: Sequence[Tuple[int, int]], n_highway: int,
                 activation: str = "relu", projection_dim: Optional[int] = None) -> None:
        super().__init__()
        n_filters = sum(num for _, num in filters)
        self.activation = torch.relu if activation == "relu" else torch.tanh
        self.embedding = nn.Embedding(N_CHARACTERS, char_embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(char_embedding_dim, num, width) for width, num in filters)
        self.highways = nn.ModuleList(Highway(n_filters) for _ in range(n_highway))
        self.projection: Optional[nn.Linear] = None
        if projection_dim is not None and projection_dim != n_filters:
            self.projection = nn.Linear(n_filters, projection_dim)
        self.reset_parameters()

    @classmethod
    def from_options(cls, options: LstmOptions) -> "CharCNN":
        return cls(options.char_embedding_dim, options.filters, options.n_highway, options.activation,
                   options.projection_dim)

    def reset_parameters(self) -> None:
        """bilm-tf's training initialisation (elmo-spec §8.4)."""
        nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        for conv in self.convs:
            if self.activation is torch.relu:
                nn.init.uniform_(conv.weight, -0.05, 0.05)
            else:
                width, dim = conv.kernel_size[0], conv.in_channels
                nn.init.normal_(conv.weight, std=math.sqrt(1.0 / (width * dim)))
            nn.init.zeros_(conv.bias)
        for highway in self.highways:
            highway.reset_parameters()
        if self.projection is not None:
            nn.init.normal_(self.projection.weight, std=math.sqrt(1.0 / self.projection.in_features))
            nn.init.zeros_(self.projection.bias)

    def _trim(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Drop the trailing columns where every token has only padding characters.

        A window made only of padding characters gives the same value for every token, so the
        max-pool over the full width equals the max over the trimmed width and that one value
        (added back in forward). Most words are short, so this skips most of the convolution work.
        """
        width = char_ids.shape[1]
        longest = int((char_ids != PADDING_ID).sum(dim=1).max()) if char_ids.shape[0] else width
        keep = longest + max(conv.kernel_size[0] for conv in self.convs) - 1
        return char_ids[:, :keep] if keep < width else char_ids

    def forward(self, char_ids: torch.Tensor, precision: str = PRECISION) -> torch.Tensor:
        chars = self.embedding(self._trim(char_ids)).transpose(1, 2)
        pooled = [conv1d(chars, conv, precision).amax(dim=2) for conv in self.convs]
        if chars.shape[2] < char_ids.shape[1]:
            pad = self.embedding.weight[PADDING_ID].view(1, -1, 1)
            pooled = [torch.maximum(p, conv1d(pad.expand(1, -1, conv.kernel_size[0]), conv, precision)[:, :, 0])
                      for p, conv in zip(pooled, self.convs)]
        x = self.activation(torch.cat(pooled, dim=-1))
        for highway in self.highways:
            x = highway(x, precision)
        if self.projection is not None:
            x = linear(x, self.projection, precision)
        return x
