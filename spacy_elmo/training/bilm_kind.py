"""What pretraining needs of a biLM architecture.

Each architecture is one module (`lstm_lm.py`, `transformer_lm.py`) with a `BilmKind` subclass, and one
row of `kinds.KINDS` (its settings and their defaults, beside its row of bilm/kinds.py, which gives its
options class); the loop, checkpoints, export and the CLI ask those tables, never which kind a run has.
A `BilmKind` brings the biLM options its settings describe, its language model (the biLM plus the
sampled softmax), its batches and its exporter.
"""
from __future__ import annotations

import abc
import logging
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterator, Mapping, Optional, Protocol, Sequence, Tuple, Type

import torch

from ..bilm.interface import BiLMOptions
from .softmax import SoftmaxLM
from .vocab import Vocab

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
"""Output names that ask `export` for one archive file instead of a folder."""

Batch = Tuple[Tuple[torch.Tensor, ...], int, torch.Tensor]
"""The model's inputs (after which the loop passes the carried state), the real tokens read, and the
number of predicted targets per direction (2,)."""


class Settings(Protocol):
    """The training settings every kind reads (a `TrainConfig` has them)."""

    fmt: str
    lang: str
    unroll_steps: int
    max_characters_per_token: int
    dropout: float
    n_negative_samples: int


class Batches(Protocol):
    """Endless batches for training, one pass for evaluation; the position is saved in checkpoints."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __next__(self) -> Batch: ...

    def state_dict(self) -> Dict[str, Any]: ...

    def load_state_dict(self, state: Dict[str, Any]) -> None: ...


class BilmKind(abc.ABC):
    """One biLM architecture as pretraining sees it."""

    language_model: ClassVar[Type[SoftmaxLM]]
    """Called as (options, n_classes, dropout, n_samples): forward(*inputs, state) -> (losses (2,), state)."""

    @abc.abstractmethod
    def architecture(self, settings: Mapping[str, Any]) -> BiLMOptions:
        """The biLM options that a run's settings describe; OptionsError if they are impossible."""

    @abc.abstractmethod
    def batches(self, settings: Settings, vocab: Vocab, paths: Sequence[Path], seed: int, training: bool,
                batch_size: int) -> Batches:
        """Training batches (shuffled, endless) or evaluation batches (one pass in file order)."""

    @abc.abstractmethod
    def export(self, model: SoftmaxLM, vocab: Vocab, settings: Settings, out: Path, with_softmax: bool,
               overwrite: bool, inputs: Sequence[Path]) -> Path:
        """The trained biLM in the layout its users load, written whole or not at all."""

    def train_options(self, options: BiLMOptions) -> Dict[str, Any]:
        """The architecture part of a run's train_options.json, with its kind (runs before both kinds wrote
        it hold none: the unnamed kind, see checkpoint.check_train_options)."""
        return {**options.to_dict(), "kind": options.kind}

    def export_warning(self, options: BiLMOptions) -> Optional[str]:
        """Why `export` would refuse a run of these options, said when the run starts; None if it would not."""
        return None

    def continue_softmax(self, model: SoftmaxLM, source: Path, vocab: Vocab) -> None:
        """After --init-from an export (`source`) whose biLM `model` holds: the softmax, where the export has one."""
        logger.warning("%s: the softmax starts from random weights (only the biLM is taken from an export)", source)
