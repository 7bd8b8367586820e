"""The biLM architectures that `pretrain --bilm` trains: one row each.

A new architecture is one module with a `BilmKind` (its options, language model, batches and
exporter; see bilm_kind.py) and one row here. The rows are plain data so that the command line
can build `pretrain`'s options and help from them without importing torch (`--help` answers at
once); a row's implementation is imported when a run first needs it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Dict, Mapping

if TYPE_CHECKING:
    from .bilm_kind import BilmKind


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str
    """What `pretrain --help` says of it."""
    defaults: Mapping[str, Any]
    """Its settings (TrainConfig fields) and their defaults: those no other kind has, plus shared
    settings whose default is its own (unroll_steps)."""
    implementation: str = field(compare=False)
    """`module:class` of its `BilmKind`, as in an entry point."""

    @cached_property
    def impl(self) -> BilmKind:
        module, name = self.implementation.split(":")
        return getattr(importlib.import_module(module), name)()


KINDS: Dict[str, Kind] = {kind.name: kind for kind in (
    Kind("lstm", "ELMo, bilm-tf's recipe",
         {"lstm_dim": 512, "projection_dim": 128, "cell_clip": 3.0, "proj_clip": 3.0, "use_skip_connections": True,
          "unroll_steps": 20},
         "spacy_elmo.training.lstm_lm:LstmKind"),
    Kind("transformer", "Transformer ELMo, exported as an AllenNLP model archive",
         {"input_dim": 256, "hidden_dim": 1024, "n_heads": 8, "unroll_steps": 64},
         "spacy_elmo.training.transformer_lm:TransformerKind"),
)}
