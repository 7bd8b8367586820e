"""What `pretrain --bilm` needs of each biLM kind, keyed by bilm/kinds.py's table: one row each.

A new architecture is one row there, one module with a `BilmKind` (its options, language model,
batches and exporter; see bilm_kind.py) and one row here. The rows are plain data so that the
command line can build `pretrain`'s options and help from them without importing torch (`--help`
answers at once); a row's implementation is imported when a run first needs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Dict, Mapping

from ..bilm import kinds as bilm_kinds

if TYPE_CHECKING:
    from .bilm_kind import BilmKind


@dataclass(frozen=True)
class TrainingKind:
    bilm: bilm_kinds.Kind
    summary: str
    """What `pretrain --help` says of it."""
    defaults: Mapping[str, Any]
    """Its settings (TrainConfig fields) and their defaults: those no other kind has, plus shared
    settings whose default is its own (unroll_steps)."""
    implementation: str = field(compare=False)
    """`module:class` of its `BilmKind`, as in an entry point."""

    @property
    def name(self) -> str:
        return self.bilm.name

    @cached_property
    def impl(self) -> BilmKind:
        return bilm_kinds.resolve(self.implementation)()


KINDS: Dict[str, TrainingKind] = {kind.name: kind for kind in (
    TrainingKind(bilm_kinds.LSTM, "ELMo, bilm-tf's recipe",
                 {"lstm_dim": 512, "projection_dim": 128, "cell_clip": 3.0, "proj_clip": 3.0,
                  "use_skip_connections": True, "unroll_steps": 20},
                 "spacy_elmo.training.lstm_lm:LstmKind"),
    TrainingKind(bilm_kinds.TRANSFORMER, "Transformer ELMo, exported as an AllenNLP model archive",
                 {"input_dim": 256, "hidden_dim": 1024, "n_heads": 8, "unroll_steps": 64},
                 "spacy_elmo.training.transformer_lm:TransformerKind"),
)}
assert set(KINDS) == set(bilm_kinds.KINDS), "one training row per biLM kind"
DEFAULT = KINDS[bilm_kinds.LSTM.name]
"""What `pretrain` trains without --bilm: ELMo as published."""
