"""ELMo's task-specific weighted sum of the biLM layers (elmo-spec §6): gamma * sum_j softmax(w)_j * h_j."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..errors import InputError

LAYER_NORM_EPS = 1e-12


class ScalarMix(nn.Module):
    """Mixes L layers of shape (..., D) into one; weights start at 0 (a uniform mix) and gamma at 1.

    With `do_layer_norm`, each layer is first normalised as (h - mu) / sqrt(var + 1e-12) with one mu
    and var per layer, taken over every unmasked position and feature. The statistics therefore
    cover exactly the tokens the caller passes: spacy-elmo mixes layers without <S> and </S>, so
    boundaries are excluded as in bilm-tf (AllenNLP includes them). Masked positions are normalised
    with the same statistics but never contribute to them.
    """

    def __init__(self, n_layers: int, do_layer_norm: bool = False, trainable: bool = True) -> None:
        super().__init__()
        if n_layers < 1:
            raise InputError(f"ScalarMix needs at least one layer, found n_layers={n_layers}")
        self.n_layers = n_layers
        self.do_layer_norm = do_layer_norm
        self.weights = nn.Parameter(torch.zeros(n_layers), requires_grad=trainable)
        self.gamma = nn.Parameter(torch.ones(1), requires_grad=trainable)

    def forward(self, layers: Union[torch.Tensor, Sequence[torch.Tensor]],
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """layers (L, ..., D) or a list of L tensors (..., D); mask (...) of booleans, True = token."""
        if not isinstance(layers, torch.Tensor):
            layers = torch.stack(list(layers))
        if layers.dim() < 2 or layers.shape[0] != self.n_layers:
            found = layers.shape[0] if layers.dim() >= 2 else "a tensor without a layer dimension"
            raise InputError(f"ScalarMix was built for {self.n_layers} layers, found {found} "
                             f"(input shape {tuple(layers.shape)}, expected (L, ..., D))")
        if mask is not None and tuple(mask.shape) != tuple(layers.shape[1:-1]):
            raise InputError(f"ScalarMix mask has shape {tuple(mask.shape)}, expected {tuple(layers.shape[1:-1])}")
        if self.do_layer_norm:
            layers = self._normalise(layers, mask)
        weights = torch.softmax(self.weights, dim=0).view(-1, *([1] * (layers.dim() - 1)))
        return self.gamma * (weights * layers).sum(dim=0)

    @staticmethod
    def _normalise(layers: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        n_layers, dim = layers.shape[0], layers.shape[-1]
        flat = layers.reshape(n_layers, -1, dim)
        if mask is None:
            keep = flat.new_ones(1, flat.shape[1], 1)
        else:
            keep = mask.reshape(1, -1, 1).to(flat.dtype)
        count = (keep.sum() * dim).clamp(min=1.0)
        mean = (flat * keep).sum(dim=(1, 2), keepdim=True) / count
        var = (((flat - mean) * keep) ** 2).sum(dim=(1, 2), keepdim=True) / count
        return ((flat - mean) / torch.sqrt(var + LAYER_NORM_EPS)).reshape(layers.shape)
