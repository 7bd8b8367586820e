"""The LSTM ELMo biLM: char CNN token vectors fed to forward and backward LSTM stacks (elmo-spec §4-5)."""
from __future__ import annotations

from typing import ClassVar, Optional

import torch

from .char_cnn import CharCNN
from .interface import ContextualBiLM
from .lstm import ElmoLstm, LstmState
from .options import LstmOptions
from .settings import PRECISION


def reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T) positions that reverse each row's first lengths[b] items and leave padding in place."""
    positions = torch.arange(steps, device=lengths.device).unsqueeze(0)
    flipped = lengths.unsqueeze(1) - 1 - positions
    return torch.where(flipped >= 0, flipped, positions)


class LstmBiLM(ContextualBiLM):
    """Returns N + 1 layers of width 2P: [x; x], then [forward; backward] of each LSTM layer.

    Stateless by default: every sentence starts from a zero state. With `stateful=True` the final
    LSTM state of batch row b becomes the initial state of row b in the next stateful call, as in
    AllenNLP and bilm-tf, which is what their reference outputs need.
    """

    supports_state: ClassVar[bool] = True

    def __init__(self, options: LstmOptions, dropout: float = 0.0) -> None:
        super().__init__()
        self.options = options
        self.char_cnn = CharCNN.from_options(options)
        self.lstm = ElmoLstm(options.projection_dim, options.lstm_dim, options.n_layers, options.cell_clip,
                             options.proj_clip, options.use_skip_connections, dropout)
        self._state: Optional[LstmState] = None

    def reset_state(self) -> None:
        self._state = None

    def contextualize(self, token_vectors: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
                      stateful: bool = False, precision: str = PRECISION) -> torch.Tensor:
        """forward() from char-CNN vectors (U, P) of the distinct tokens that `index` points into,
        for callers that keep token vectors from earlier batches."""
        steps = index.shape[1]
        tokens = token_vectors[index]
        mask = torch.arange(steps, device=index.device).unsqueeze(0) < lengths.unsqueeze(1)
        reverse = reverse_index(lengths, steps).unsqueeze(-1).expand_as(tokens)
        inputs = torch.stack([tokens, tokens.gather(1, reverse)])
        state = self._take_state(index.shape[0], tokens) if stateful else None
        outputs, final = self.lstm(inputs, mask, state, precision)
        if stateful:
            self._keep_state(final)
        tokens = tokens * mask.unsqueeze(-1)
        layers = [torch.cat([tokens, tokens], dim=-1)]
        for out in outputs:
            layers.append(torch.cat([out[0], out[1].gather(1, reverse)], dim=-1))
        return torch.stack(layers)

    def _take_state(self, rows: int, like: torch.Tensor) -> LstmState:
        zero = self.lstm.zero_state(rows, like.device)
        if self._state is None:
            return zero
        kept = min(rows, self._state[0].shape[2])
        for new, old in zip(zero, self._state):
            new[:, :, :kept] = old[:, :, :kept]
        return zero

    def _keep_state(self, final: LstmState) -> None:
        """Rows of this batch get its final state; rows beyond the batch keep theirs."""
        cell, hidden = (s.detach() for s in final)
        if self._state is not None and self._state[0].shape[2] > cell.shape[2]:
            old_cell, old_hidden = (s.clone() for s in self._state)
            rows = cell.shape[2]
            old_cell[:, :, :rows] = cell
            old_hidden[:, :, :rows] = hidden
            cell, hidden = old_cell, old_hidden
        self._state = (cell, hidden)

