"""The biLM's stacked LSTMs with cell projection and clipping (TensorFlow's LSTMCell semantics).

Both directions run in one time loop as a batch of two: direction 0 reads its input left to
right, direction 1 reads a sequence that the caller has already reversed. Only the recurrent
product is inside the loop; the input product of all time steps is one matrix multiply. Rows are
sorted by length so the running batch shrinks as rows end: padding is never computed.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import nn

from .precision import batched_product
from .settings import PRECISION

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

    def forward(self, inputs: torch.Tensor, active: List[int], state: LstmState,
                precision: str = PRECISION) -> Tuple[torch.Tensor, LstmState]:
        """inputs (2, B, T, D) with rows sorted by decreasing length; active[t] rows are still running at
        step t, so finished rows cost nothing and keep their last state. state (c, h) of (2, B, ·).
        The input product runs on the running positions only, packed time-major as in a PackedSequence."""
        n_dir, batch, steps, dim = inputs.shape
        forget = torch.zeros_like(self.bias)
        forget[:, 2 * self.cell_dim : 3 * self.cell_dim] = 1.0
        time_major = inputs.transpose(1, 2)
        if sum(active) < steps * batch:
            running = torch.arange(batch, device=inputs.device) < torch.tensor(active, device=inputs.device)[:, None]
            packed = time_major[:, running]
        else:
            packed = time_major.reshape(n_dir, steps * batch, dim)
        gates_in = batched_product(packed, self.w_input, precision, add=(self.bias + forget).unsqueeze(1))
        cell, hidden = state
        finished: List[LstmState] = []
        outputs: List[torch.Tensor] = []
        start = 0
        for t in range(steps):
            n = active[t]
            if n < cell.shape[1]:
                finished.append((cell[:, n:], hidden[:, n:]))
                cell, hidden = cell[:, :n], hidden[:, :n]
            if n == 0:
                outputs.extend(inputs.new_zeros(n_dir, batch, self.hidden_dim) for _ in range(t, steps))
                break
            gates = batched_product(hidden, self.w_hidden, precision, add=gates_in[:, start : start + n])
            start += n
            i, j, f, o = gates.chunk(4, dim=-1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(j)
            if self.cell_clip is not None:
                cell = cell.clamp(-self.cell_clip, self.cell_clip)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
            if self.w_proj is not None:
                hidden = batched_product(hidden, self.w_proj, precision)
            if self.proj_clip is not None:
                hidden = hidden.clamp(-self.proj_clip, self.proj_clip)
            outputs.append(hidden if n == batch else nn.functional.pad(hidden, (0, 0, 0, batch - n)))
        finished.append((cell, hidden))
        final_cell = torch.cat([c for c, _ in reversed(finished)], dim=1)
        final_hidden = torch.cat([h for _, h in reversed(finished)], dim=1)
        return torch.stack(outputs, dim=2), (final_cell, final_hidden)


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
        n, dtype = len(self.layers), first.w_input.dtype
        return (torch.zeros(n, 2, batch, first.cell_dim, device=device, dtype=dtype),
                torch.zeros(n, 2, batch, first.hidden_dim, device=device, dtype=dtype))

    def forward(self, inputs: torch.Tensor, mask: Optional[torch.Tensor] = None, state: Optional[LstmState] = None,
                precision: str = PRECISION) -> Tuple[List[torch.Tensor], LstmState]:
        """Returns each layer's (2, B, T, P) output, residual included (zeros at padding), and the final
        (c, h) of every layer. `mask` must be a prefix mask (True then False in every row)."""
        n_dir, batch, steps, _ = inputs.shape
        if state is None:
            state = self.zero_state(batch, inputs.device)
        if mask is None:
            order = None
            active = [batch] * steps
        else:
            lengths = mask.sum(dim=1)
            if not torch.equal(mask, torch.arange(steps, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)):
                raise ValueError("ElmoLstm needs a prefix mask: every row True up to its length, then False")
            lengths, order = torch.sort(lengths, descending=True, stable=True)
            inputs = inputs[:, order]
            state = (state[0][:, :, order], state[1][:, :, order])
            counts = torch.bincount(lengths, minlength=steps + 1).tolist()
            active, running = [], batch
            for t in range(steps):
                running -= counts[t]
                active.append(running)
        outputs: List[torch.Tensor] = []
        cells, hiddens = [], []
        x = inputs
        for depth, layer in enumerate(self.layers):
            if self.training and self.dropout > 0:
                x = nn.functional.dropout(x, self.dropout)
            out, (cell, hidden) = layer(x, active, (state[0][depth], state[1][depth]), precision)
            if self.use_skip_connections and depth > 0:
                out = out + x
            outputs.append(out)
            cells.append(cell)
            hiddens.append(hidden)
            x = out
        final = (torch.stack(cells), torch.stack(hiddens))
        if order is not None:
            inverse = torch.argsort(order)
            outputs = [out[:, inverse] for out in outputs]
            final = (final[0][:, :, inverse], final[1][:, :, inverse])
        return outputs, final
