"""What every biLM offers its users (Embedder, spaCy layer, trainer, CLI), whichever architecture it has.

A biLM maps character ids to L = n_output_layers layers of width output_dim: layer 0 is the
context-free char-CNN vector (repeated to output_dim), each further layer holds the forward and
backward halves side by side. The char CNN is exposed on its own so that callers can cache the
vectors of frequent tokens and hand them to `contextualize`.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Protocol, Union

import torch
from torch import nn

from ..errors import OptionsError, WeightsError
from .char_ids import CharBatch

PathLike = Union[str, Path]


class BiLMOptions(Protocol):
    """The hyper-parameters of a biLM, as far as its users need them."""

    kind: ClassVar[str]
    max_characters_per_token: int

    @property
    def output_dim(self) -> int: ...

    @property
    def n_output_layers(self) -> int: ...

    def to_dict(self) -> Dict[str, Any]: ...


class ContextualBiLM(nn.Module, abc.ABC):
    """A biLM: `char_cnn` (U, max_chars) ids -> (U, E) token vectors, then `contextualize` -> layers.

    `supports_state` says whether `stateful=True` is possible (the LSTM carries its state from one
    batch to the next); a biLM without state refuses it with an InputError.
    """

    options: BiLMOptions
    char_cnn: nn.Module
    supports_state: ClassVar[bool] = False

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def output_dim(self) -> int:
        return self.options.output_dim

    @property
    def n_output_layers(self) -> int:
        return self.options.n_output_layers

    def reset_state(self) -> None:
        """Forget the state kept by stateful calls (nothing to forget for a stateless biLM)."""

    @abc.abstractmethod
    def contextualize(self, token_vectors: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
                      stateful: bool = False) -> torch.Tensor:
        """Layers (L, B, T, D) from char-CNN vectors (U, E) of the distinct tokens that `index` (B, T)
        points into; `lengths` (B,) counts <S> and </S>; positions at or after a row's length are zeros."""

    def forward(self, char_ids: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor,
                stateful: bool = False) -> torch.Tensor:
        return self.contextualize(self.char_cnn(char_ids), index, lengths, stateful)

    def embed(self, batch: CharBatch, stateful: bool = False) -> torch.Tensor:
        """Layers (L, B, T', D) of a CharBatch, boundaries included, zeros at padding."""
        device = self.device
        return self(torch.from_numpy(batch.unique).to(device), torch.from_numpy(batch.index).to(device),
                    torch.from_numpy(batch.lengths).to(device), stateful=stateful)


def bilm_config(bilm: ContextualBiLM) -> Dict[str, Any]:
    """JSON/msgpack-able description from which `bilm_from_config` rebuilds the module (weights apart)."""
    return {"kind": bilm.options.kind, "options": bilm.options.to_dict()}


def bilm_from_config(config: Dict[str, Any], source: str = "biLM config") -> ContextualBiLM:
    """An untrained biLM of the architecture `bilm_config` described; a config without "kind" is an LSTM."""
    from .lstm_bilm import BiLM
    from .options import ElmoOptions
    from .transformer_bilm import TransformerBiLM, TransformerOptions

    kind = config.get("kind", ElmoOptions.kind)
    if kind == ElmoOptions.kind:
        return BiLM(ElmoOptions.from_dict(config["options"], source=source))
    if kind == TransformerOptions.kind:
        return TransformerBiLM(TransformerOptions.from_dict(config["options"], source=source))
    raise OptionsError(f"{source}: unknown biLM kind {kind!r} (expected 'lstm' or 'transformer')")


def load_any_bilm(path: Optional[PathLike] = None, options_file: Optional[PathLike] = None,
                  weight_file: Optional[PathLike] = None) -> ContextualBiLM:
    """A biLM in eval mode from whatever was given: options.json + HDF5 files; a folder holding them
    (as `export` writes); or an AllenNLP model archive (model.tar.gz or its unpacked folder)."""
    from .archive import CONFIG_NAME, is_archive, load_archive
    from .weights import load_bilm

    if path is not None and (options_file is not None or weight_file is not None):
        raise WeightsError(f"got a model path ({path}) and options/weight files: pass one or the other")
    if path is None:
        if options_file is None or weight_file is None:
            raise WeightsError("pass a model path, or both an options file and a weight file")
        return load_bilm(options_file, weight_file)
    path = Path(path)
    if path.is_dir() and (path / "options.json").is_file() and (path / "weights.hdf5").is_file():
        return load_bilm(path / "options.json", path / "weights.hdf5")
    if (path.is_dir() and (path / CONFIG_NAME).is_file()) or (path.is_file() and is_archive(path)):
        return load_archive(path)
    if not path.exists():
        raise WeightsError(f"model not found: {path}")
    raise WeightsError(f"{path}: not a biLM (expected a folder with options.json + weights.hdf5, or an "
                       f"AllenNLP model archive: model.tar.gz or a folder with {CONFIG_NAME} and weights.th)")
