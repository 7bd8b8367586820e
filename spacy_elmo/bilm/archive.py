"""AllenNLP model archives of a transformer biLM (model.tar.gz or its folder: config.json, weights.th,
vocabulary/), read and written without allennlp; archive_config.py maps the config.

The state dict is read with `torch.load(weights_only=True)`, which never unpickles arbitrary objects,
and nothing is extracted from a tar file but config.json and weights.th, after every member name has
been checked to stay inside the archive's folder.
"""
from __future__ import annotations

import json
import os
import pickle
import posixpath
import re
import shutil
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from ..atomic import PathLike
from ..errors import OptionsError, WeightsError
from .archive_config import CONFIG_NAME, config_from_options, options_from_config
from .transformer_bilm import TransformerBiLM, sinusoid_positions

WEIGHTS_NAME = "weights.th"
VOCABULARY_NAME = "vocabulary"
CONTEXT_PREFIX = "_contextualizer."
POSITION_KEY = "_contextualizer._position.positional_encoding"
ALLENNLP_MAX_POSITIONS = 5000


def load_archive(path: PathLike) -> TransformerBiLM:
    """A TransformerBiLM in eval mode from an AllenNLP model archive or its unpacked folder. The config is
    checked (sizes against the memory available) before any tensor is read or made."""
    path = Path(path)
    with _archive_files(path) as (config_file, weights_file):
        options, embedder_name = options_from_config(_read_config(config_file, path), f"{path}: {CONFIG_NAME}")
        state = _read_state(weights_file, path)
    bilm = TransformerBiLM(options)
    assign_state(bilm, state, embedder_name, f"{path}: {WEIGHTS_NAME}")
    return bilm.eval()


def read_archive(path: Path) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """(config, state dict) of an archive file or folder."""
    with _archive_files(path) as (config_file, weights_file):
        return _read_config(config_file, path), _read_state(weights_file, path)


@contextmanager
def _archive_files(path: Path) -> Iterator[Tuple[Path, Path]]:
    """(config.json, weights.th) of an archive folder, or of a tar extracted into a temporary folder."""
    if path.is_dir():
        yield path / CONFIG_NAME, path / WEIGHTS_NAME
        return
    if not path.exists():
        raise WeightsError(f"model archive not found: {path}")
    if not tarfile.is_tarfile(path):
        raise WeightsError(f"{path}: not a model archive (expected a model.tar.gz holding {CONFIG_NAME}, "
                           f"{WEIGHTS_NAME} and {VOCABULARY_NAME}/, or its unpacked folder)")
    with tempfile.TemporaryDirectory(prefix="spacy-elmo-archive-") as tmp:
        _extract(path, Path(tmp), (CONFIG_NAME, WEIGHTS_NAME))
        yield Path(tmp) / CONFIG_NAME, Path(tmp) / WEIGHTS_NAME


def _extract(path: Path, target: Path, names: Tuple[str, ...]) -> None:
    """Copy the regular files `names` out of the tar in one pass, refusing the whole archive if any
    member points outside it."""
    extracted = set()
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                name = posixpath.normpath(member.name)
                if name.startswith("/") or name == ".." or name.startswith("../"):
                    raise WeightsError(f"{path}: member '{member.name}' points outside the archive; refusing "
                                       "to read it (an AllenNLP archive holds only relative paths)")
                if name in names and member.isfile():
                    source = tar.extractfile(member)
                    with source, open(target / name, "wb") as out:
                        shutil.copyfileobj(source, out)
                    extracted.add(name)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise WeightsError(f"{path}: unreadable model archive ({err})") from None
    for name in names:
        if name not in extracted:
            raise WeightsError(f"{path}: no file {name} in the archive (an AllenNLP model archive holds "
                               f"{CONFIG_NAME}, {WEIGHTS_NAME} and {VOCABULARY_NAME}/)")


def _read_config(config_file: Path, source: Path) -> Dict[str, Any]:
    if not config_file.is_file():
        raise WeightsError(f"{source}: no {CONFIG_NAME} (an AllenNLP model archive holds {CONFIG_NAME}, "
                           f"{WEIGHTS_NAME} and {VOCABULARY_NAME}/)")
    try:
        config = json.loads(config_file.read_text(encoding="utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OptionsError(f"{source}: {CONFIG_NAME} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise OptionsError(f"{source}: {CONFIG_NAME} must hold a JSON object")
    return config


def _read_state(weights_file: Path, source: Path) -> Dict[str, torch.Tensor]:
    if not weights_file.is_file():
        raise WeightsError(f"{source}: no {WEIGHTS_NAME} (an AllenNLP model archive holds {CONFIG_NAME}, "
                           f"{WEIGHTS_NAME} and {VOCABULARY_NAME}/)")
    try:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
        raise WeightsError(f"{source}: {WEIGHTS_NAME} is not a torch state dict that loads with "
                           f"weights_only=True ({_refusal(err)})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise WeightsError(f"{source}: {WEIGHTS_NAME} must hold a state dict (parameter name -> tensor)")
    return state


def _refusal(err: Exception) -> str:
    """torch's reason in a few words, without its advice to load again with weights_only=False: that would
    run whatever code the file names."""
    text = str(err).strip()
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"a pickled {found.group(1)}" if found else "pickled objects"
        return f"it holds {what}, not only tensors, and unpickling that could run code"
    return text.splitlines()[0] if text else type(err).__name__


@dataclass
class _Entry:
    """One archive tensor: the concatenation (dim 0) of our parameters, each times its sign."""

    key: str
    parts: List[Tuple[torch.Tensor, float]]

    @property
    def shape(self) -> Tuple[int, ...]:
        first = tuple(self.parts[0][0].shape)
        return (sum(p.shape[0] for p, _ in self.parts), *first[1:])

    def dump(self) -> torch.Tensor:
        return torch.cat([p.detach().to("cpu", torch.float32) * sign for p, sign in self.parts])

    def load(self, tensor: torch.Tensor) -> None:
        pieces = tensor.split([p.shape[0] for p, _ in self.parts])
        for (param, sign), piece in zip(self.parts, pieces):
            param.copy_(piece * sign)


def _entries(bilm: TransformerBiLM, embedder_name: str) -> Iterator[_Entry]:
    """Our parameters under AllenNLP's names. AllenNLP's highway layer is one Linear whose second
    half makes the gate g of y = g x + (1 - g) f(x); ours gates f(x), hence the negated half."""

    def plain(key: str, module: torch.nn.Module, names: Tuple[str, ...] = ("weight", "bias")) -> Iterator[_Entry]:
        for attr in names:
            yield _Entry(f"{key}.{attr}", [(getattr(module, attr), 1.0)])

    prefix = f"_text_field_embedder.token_embedder_{embedder_name}."
    encoder = bilm.char_cnn
    yield _Entry(f"{prefix}_embedding._module.weight", [(encoder.cnn.embedding.weight, 1.0)])
    for i, conv in enumerate(encoder.cnn.convs):
        yield from plain(f"{prefix}_encoder._module.char_conv_{i}", conv)
    for k, highway in enumerate(encoder.cnn.highways):
        for attr in ("weight", "bias"):
            yield _Entry(f"{prefix}_encoder._module._highways._layers.{k}.{attr}",
                         [(getattr(highway.transform, attr), 1.0), (getattr(highway.carry, attr), -1.0)])
    yield from plain(f"{prefix}_encoder._module._projection", encoder.projection)
    if bilm.options.layer_norm:
        yield from plain(f"{prefix}_encoder._module._layer_norm", encoder.norm, ("gamma", "beta"))
    for direction, lm in (("_forward_transformer", bilm.forward_lm), ("_backward_transformer", bilm.backward_lm)):
        for i, layer in enumerate(lm.layers):
            key = f"{CONTEXT_PREFIX}{direction}.layers.{i}"
            for j, linear in enumerate((layer.query, layer.key, layer.value, layer.output)):
                yield from plain(f"{key}.self_attn.linears.{j}", linear)
            yield from plain(f"{key}.feed_forward.w_1", layer.feed_forward_in)
            yield from plain(f"{key}.feed_forward.w_2", layer.feed_forward_out)
            yield from plain(f"{key}.sublayer.0.norm", layer.attention_norm, ("gamma", "beta"))
            yield from plain(f"{key}.sublayer.1.norm", layer.feed_forward_norm, ("gamma", "beta"))
        yield from plain(f"{CONTEXT_PREFIX}{direction}.norm", lm.norm, ("gamma", "beta"))


def assign_state(bilm: TransformerBiLM, state: Dict[str, torch.Tensor], embedder_name: str, source: str) -> None:
    """Copy an AllenNLP state dict into `bilm`, after checking every name, shape and value.

    Tensors outside the char embedder and the contextualizer (the softmax, the loss average) are
    not part of the biLM and are ignored.
    """
    entries = list(_entries(bilm, embedder_name))
    options = bilm.options
    described = (f"(config: {options.n_layers} layers, input_dim {options.input_dim}, hidden_dim "
                 f"{options.hidden_dim}, {options.n_highway} highway, {len(options.filters)} filters)")
    for entry in entries:
        if entry.key not in state:
            raise WeightsError(f"{source}: missing weight '{entry.key}' {described}")
        found = tuple(state[entry.key].shape)
        if found != entry.shape:
            raise WeightsError(f"{source}: weight '{entry.key}' has shape {found}, expected {entry.shape} {described}")
        if not torch.isfinite(state[entry.key]).all():
            raise WeightsError(f"{source}: weight '{entry.key}' contains NaN or infinite values")
    prefix = f"_text_field_embedder.token_embedder_{embedder_name}."
    known = {entry.key for entry in entries} | {POSITION_KEY}
    unexpected = sorted(k for k in state if k.startswith((prefix, CONTEXT_PREFIX)) and k not in known)
    if unexpected:
        raise WeightsError(f"{source}: weights {unexpected[:5]} are not in a model with this config {described}: "
                           "config and weights disagree")
    _check_positions(state.get(POSITION_KEY), options.input_dim, source)
    with torch.no_grad():
        for entry in entries:
            entry.load(state[entry.key].to(torch.float32))


def _check_positions(table: Optional[torch.Tensor], dim: int, source: str) -> None:
    """The stored position table must be the sinusoid spacy-elmo computes (it is a buffer, not trained)."""
    if table is None:
        return
    if table.dim() != 3 or table.shape[0] != 1 or table.shape[2] != dim:
        raise WeightsError(f"{source}: '{POSITION_KEY}' has shape {tuple(table.shape)}, expected (1, n, {dim})")
    expected = sinusoid_positions(table.shape[1], dim, torch.device("cpu"))
    if not torch.allclose(table[0].to(torch.float32), expected, atol=1e-4):
        raise WeightsError(f"{source}: '{POSITION_KEY}' is not the sinusoidal position table this model computes")


def write_archive(bilm: TransformerBiLM, path: PathLike, vocabulary_dir: Optional[PathLike] = None,
                  extra_state: Optional[Dict[str, torch.Tensor]] = None,
                  model_settings: Optional[Dict[str, Any]] = None, as_tar: Optional[bool] = None) -> Path:
    """Write `bilm` as an AllenNLP model archive: a folder, or a tar.gz (`as_tar`; by default when `path`
    ends in .tar.gz/.tgz).

    `extra_state` adds tensors that are not part of the biLM (a trainer's softmax), `vocabulary_dir`
    the softmax vocabulary, `model_settings` the LanguageModel settings that go with them (num_samples,
    dropout); without them AllenNLP can embed with the archive but not train on.
    The archive appears complete or not at all.
    """
    path = Path(path)
    config = config_from_options(bilm.options)
    config["model"].update(model_settings or {})
    name = next(k for k, v in config["model"]["text_field_embedder"]["token_embedders"].items()
                if v.get("type") != "empty")
    state = {entry.key: entry.dump() for entry in _entries(bilm, name)}
    state[POSITION_KEY] = sinusoid_positions(ALLENNLP_MAX_POSITIONS, bilm.options.input_dim,
                                             torch.device("cpu")).unsqueeze(0)
    state.update(extra_state or {})
    if as_tar is None:
        as_tar = path.name.endswith((".tar.gz", ".tgz"))
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=parent) as tmp:
        folder = Path(tmp) / "archive"
        folder.mkdir()
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf8")
        torch.save(state, folder / WEIGHTS_NAME)
        if vocabulary_dir is not None:
            shutil.copytree(vocabulary_dir, folder / VOCABULARY_NAME)
        else:
            (folder / VOCABULARY_NAME).mkdir()
            (folder / VOCABULARY_NAME / "non_padded_namespaces.txt").write_text("*tags\n*labels\n", encoding="utf8")
        if as_tar:
            staged = Path(tmp) / "model.tar.gz"
            with tarfile.open(staged, "w:gz") as tar:
                for item in sorted(folder.iterdir()):
                    tar.add(item, arcname=item.name)
        else:
            staged = folder
            if path.is_dir() and any(path.iterdir()):
                raise WeightsError(f"cannot write the archive folder {path}: it exists and is not empty")
        os.replace(staged, path)
    return path
