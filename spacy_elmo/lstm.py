"""The biLM's stacked LSTMs with cell projection and clipping (TensorFlow's LSTMCell semantics).

Both directions run in one time loop as a batch of two: direction 0 reads its input left to
right, direction 1 reads a sequence that the caller has already reversed. Only the recurrent
product is inside the loop; the input product of all time steps is one matrix multiply.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import nn

LstmState = Tuple[torch.Tensor, torch.Tensor]


class BiLstmLayer(nn.Module):
    """One LSTM layer for both directions; gates in TF order i, j, f, o, forget bias +1 at run time."""

    def __init__(self, input_dim: int, cell_dim: int, projection_dim: int,
                 cell_clip: Optional[float], proj_clip: Optional[float]) -> None:
        super().__init__()
        hidden_dim = projection_dim if projection_dim < cell_dim else cell_dim
        self.cell_dim = cell_dim
        self.hidden_dim = hidden_dim
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip
        self.w_input = nn.Parameter(torch.empty(2, input_dim, 4 * cell_dim))
        self.w_hidden = nn.Parameter(torch.empty(2, hidden_dim, 4 * cell_dim))
        self.bias = nn.Parameter(torch.empty(2, 4 * cell_dim))
        self.w_proj: Optional[nn.Parameter] = None
        if projection_dim < cell_dim:
            self.w_proj = nn.Parameter(torch.empty(2, cell_dim, projection_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels over TF's fused (input + hidden, 4C) shape, zero bias."""
        fan_in = self.w_input.shape[1] + self.w_hidden.shape[1]
        limit = math.sqrt(6.0 / (fan_in + 4 * self.cell_dim))
        nn.init.uniform_(self.w_input, -limit, limit)
        nn.init.uniform_(self.w_hidden, -limit, limit)
        nn.init.zeros_(self.bias)
        if self.w_proj is not None:
            limit = math.sqrt(6.0 / sum(self.w_proj.shape[1:]))
            nn.init.uniform_(self.w_proj, -limit, limit)

    def forward(self, inputs: torch.Tensor, mask: Optional[torch.Tensor], state: LstmState
                ) -> Tuple[torch.Tensor, LstmState]:
        """inputs (2, B, T, D); mask (B, T) or None when every row is full; state (c, h) of (2, B, ·)."""
        n_dir, batch, steps, dim = inputs.shape
        gates_in = torch.baddbmm(self.bias.unsqueeze(1), inputs.reshape(n_dir, batch * steps, dim), self.w_input)
        gates_in = gates_in.view(n_dir, batch, steps, -1)
        cell, hidden = state
        outputs: List[torch.Tensor] = []
        for t in range(steps):
            gates = gates_in[:, :, t] + torch.bmm(hidden, self.w_hidden)
            i, j, f, o = gates.chunk(4, dim=-1)
            new_cell = torch.sigmoid(f + 1.0) * cell + torch.sigmoid(i) * torch.tanh(j)
            if self.cell_clip is not None:
                new_cell = new_cell.clamp(-self.cell_clip, self.cell_clip)
            new_hidden = torch.sigmoid(o) * torch.tanh(new_cell)
            if self.w_proj is not None:
                new_hidden = torch.bmm(new_hidden, self.w_proj)
            if self.proj_clip is not None:
                new_hidden = new_hidden.clamp(-self.proj_clip, self.proj_clip)
            if mask is None:
                cell, hidden = new_cell, new_hidden
                outputs.append(new_hidden)
            else:
                active = mask[:, t].view(1, batch, 1)
                cell = torch.where(active, new_cell, cell)
                hidden = torch.where(active, new_hidden, hidden)
                outputs.append(new_hidden * active)
        return torch.stack(outputs, dim=2), (cell, hidden)


class ElmoLstm(nn.Module):
    """N stacked bidirectional layers; the residual link adds a layer's input to its output from layer 2 on."""

    def __init__(self, input_dim: int, cell_dim: int, n_layers: int, cell_clip: Optional[float] = None,
                 proj_clip: Optional[float] = None, use_skip_connections: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.use_skip_connections = use_skip_connections
        self.dropout = dropout
        self.layers = nn.ModuleList(
            BiLstmLayer(input_dim, cell_dim, input_dim, cell_clip, proj_clip) for _ in range(n_layers)
        )

    def zero_state(self, batch: int, device: torch.device) -> LstmState:
        first = self.layers[0]
        n = len(self.layers)
        return (torch.zeros(n, 2, batch, first.cell_dim, device=device),
                torch.zeros(n, 2, batch, first.hidden_dim, device=device))

    def forward(self, inputs: torch.Tensor, mask: Optional[torch.Tensor] = None,
                state: Optional[LstmState] = None) -> Tuple[List[torch.Tensor], LstmState]:
        """Returns each layer's (2, B, T, P) output, residual included, and the final (c, h) of every layer."""
        if state is None:
            state = self.zero_state(inputs.shape[1], inputs.device)
        outputs: List[torch.Tensor] = []
        cells, hiddens = [], []
        x = inputs
        for depth, layer in enumerate(self.layers):
            if self.training and self.dropout > 0:
                x = nn.functional.dropout(x, self.dropout)
            out, (cell, hidden) = layer(x, mask, (state[0][depth], state[1][depth]))
            if self.use_skip_connections and depth > 0:
                out = out + x
            outputs.append(out)
            cells.append(cell)
            hiddens.append(hidden)
            x = out
        return outputs, (torch.stack(cells), torch.stack(hiddens))
