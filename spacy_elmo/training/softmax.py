"""The biLM's output softmax: TensorFlow-style sampled softmax for training, full softmax for evaluation
(elmo-spec §8.5)."""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch
from torch import nn

from ..bilm.precision import autocast_products


NO_TARGET = -1
"""The target of a position that predicts nothing (padding): direction_losses skips it."""


def log_uniform_probs(n_classes: int) -> np.ndarray:
    """P(k) = (log(k + 2) - log(k + 1)) / log(V + 1): the Zipfian sampler that needs a frequency-sorted vocabulary."""
    k = np.arange(n_classes, dtype=np.float64)
    return (np.log(k + 2) - np.log(k + 1)) / np.log(n_classes + 1)


def sample_log_uniform(n_classes: int, n_samples: int, rng: np.random.Generator) -> Tuple[np.ndarray, int]:
    """`n_samples` distinct classes drawn without replacement, and how many draws that took.

    Draws come in chunks; the answer is the first `n_samples` distinct values in draw order, so it is the
    same as drawing one at a time until that many distinct classes were seen.
    """
    log_range = math.log(n_classes + 1)
    draws = np.empty(0, dtype=np.int64)
    chunk = 2 * n_samples
    while True:
        new = np.exp(rng.random(chunk) * log_range).astype(np.int64) - 1
        draws = np.concatenate([draws, np.clip(new, 0, n_classes - 1)])
        values, first = np.unique(draws, return_index=True)
        if len(values) >= n_samples:
            order = np.sort(first)[:n_samples]
            return draws[order], int(order[-1]) + 1
        chunk *= 2


def logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """hidden @ weight.T + bias. Under torch.autocast (bf16 training) only the product is bf16: the bias
    is added to its fp32 copy, so the logits and the log-sum-exp over them are fp32."""
    if autocast_products(hidden):
        return nn.functional.linear(hidden, weight).float() + bias
    return nn.functional.linear(hidden, weight, bias)


class Softmax(nn.Module):
    """Softmax weights W (V, P) and b (V,) shared by both directions; bilm-tf's initialisation."""

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(n_classes))
        self.log_probs = torch.from_numpy(np.log(log_uniform_probs(n_classes)))

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    def full_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all classes; hidden (M, P), targets (M,)."""
        return nn.functional.cross_entropy(logits(hidden, self.weight, self.bias), targets)

    def sampled_loss(self, hidden: torch.Tensor, targets: torch.Tensor, n_samples: int,
                     rng: np.random.Generator) -> torch.Tensor:
        """Mean sampled-softmax cross-entropy with one set of negatives shared by all M positions.

        Logits are corrected by -log(expected count) (TF's subtract_log_q) and a sampled class equal to a
        row's target is masked out (remove_accidental_hits). With n_samples >= V this is the full softmax.
        """
        if n_samples >= self.n_classes:
            return self.full_loss(hidden, targets)
        sampled_np, tries = sample_log_uniform(self.n_classes, n_samples, rng)
        sampled = torch.from_numpy(sampled_np).to(hidden.device)
        log_probs = self.log_probs.to(hidden.device)

        def log_expected(ids: torch.Tensor) -> torch.Tensor:
            return torch.log(-torch.expm1(tries * torch.log1p(-torch.exp(log_probs[ids])))).to(hidden.dtype)

        true_logits = (hidden * self.weight[targets]).sum(-1) + self.bias[targets] - log_expected(targets)
        sampled_logits = logits(hidden, self.weight[sampled], self.bias[sampled] - log_expected(sampled))
        sampled_logits = sampled_logits.masked_fill(targets.unsqueeze(1) == sampled.unsqueeze(0), float("-inf"))
        every = torch.cat([true_logits.unsqueeze(1), sampled_logits], dim=1)
        return (torch.logsumexp(every, dim=1) - true_logits).mean()


class SoftmaxLM(nn.Module):
    """What a biLM training model adds to its biLM: dropout on the top layer of each direction, then the
    softmax shared by both directions; sampled in training when `n_samples` > 0, full otherwise.
    Subclasses set `bilm` and compute the top layers."""

    def __init__(self, n_classes: int, dim: int, dropout: float, n_samples: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.softmax = Softmax(n_classes, dim)
        self.dropout = dropout
        self.n_samples = n_samples
        self.sampler = np.random.default_rng(seed)

    def direction_losses(self, tops: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss (2,) of the forward and backward top layers (2, B, T, P) against targets (2, B, T);
        positions whose target is negative have none."""
        tops = nn.functional.dropout(tops, self.dropout, self.training)
        losses = []
        for top, direction_targets in zip(tops, targets):
            wanted = direction_targets.reshape(-1)
            keep = wanted >= 0
            hidden, wanted = top.reshape(-1, top.shape[-1])[keep], wanted[keep]
            if self.training and self.n_samples:
                losses.append(self.softmax.sampled_loss(hidden, wanted, self.n_samples, self.sampler))
            else:
                losses.append(self.softmax.full_loss(hidden, wanted))
        return torch.stack(losses)
