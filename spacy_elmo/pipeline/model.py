"""The biLM as a Thinc model: Docs in, one float array of all layers (N + 1, n_tokens, 2P) per Doc out.

The torch module lives in a `TorchShim` (shim.py), so `spacy.load` rebuilds the biLM without the
original files. Weights are read at `initialize` (or on first use), never at construction.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch
from spacy.attrs import IS_SPACE, ORTH, SENT_START
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, torch2xp, xp2torch
from thinc.types import Floats3d

from .. import process
from ..bilm.batching import batch_layers, length_batches
from ..bilm.char_ids import CharBatch
from ..bilm.interface import ContextualBiLM
from ..bilm.loading import bilm_config, bilm_from_config
from ..bilm.settings import BATCH_SIZE, MAX_BATCH_TOKENS, PRECISION, check_precision
from ..embedder import Embedder
from ..errors import ElmoError
from ..hub import resolve_bilm
from .doc_cache import DocCache
from .listener import replace_listener_cfg
from .shim import TorchShim

ARCHITECTURE = "spacy-elmo.ElmoModel.v2"
MAX_LENGTH = 256
"""Longest sequence the biLM reads; longer sentences and Docs without sentences are cut into windows."""


def one_torch_thread() -> None:
    """torch's OpenMP pool does not survive fork, and `nlp.pipe(n_process=...)` forks: a forked
    worker that kept the parent's thread count hangs in its first parallel op."""
    torch.set_num_threads(1)


def build_bilm(**config: Any) -> ContextualBiLM:
    return bilm_from_config(config, source="serialized spacy-elmo model").eval()


@registry.architectures(ARCHITECTURE)
def ElmoModel(name: Optional[str] = None, options_file: Optional[str] = None, weight_file: Optional[str] = None,
              archive: Optional[str] = None, frozen: bool = True, max_length: int = MAX_LENGTH, batch_size: int = BATCH_SIZE,
              max_batch_tokens: int = MAX_BATCH_TOKENS, train_cache_mb: float = 2048,
              train_cache_dtype: str = "float32", precision: str = PRECISION) -> Model[List[Doc], List[Floats3d]]:
    """All biLM layers for every token of every Doc.

    The biLM: a catalogue `name` (downloaded once into the cache), official `options_file` +
    `weight_file`, a Transformer-ELMo `archive` (AllenNLP model.tar.gz), or none of them for the
    bundled English model. It is read at `initialize` and then travels inside the pipeline.

    One sequence per sentence when the Doc has sentence boundaries, else per window of at most
    `max_length` tokens; whitespace tokens are left out (zeros). Sequences of all Docs are run in
    length-sorted batches of at most `batch_size` rows and `max_batch_tokens` padded positions, so
    memory stays bounded however long a Doc is. `frozen` runs without autograd even in training,
    and then keeps the layers of up to `train_cache_mb` megabytes of training Docs (stored as
    `train_cache_dtype`, on the model's device: GPU memory on a GPU) so that later epochs do not run the
    biLM again; 0 turns that off.
    `precision` ("fp32", "fp16", "bf16", "int8") is how the biLM computes without autograd (prediction, frozen
    training); a fine-tuned biLM computes in fp32 under autograd, so its gradients are exact.
    """
    check_precision(precision)
    process.install(process.FORK_ONE_THREAD, partial(process.run_in_forked_children, one_torch_thread),
                    partial(process.stop_in_forked_children, one_torch_thread))
    if max_length < 1 or batch_size < 1 or max_batch_tokens < 1:
        raise ElmoError(f"max_length, batch_size and max_batch_tokens must be positive, found "
                        f"{max_length}, {batch_size}, {max_batch_tokens}")
    return Model(
        "elmo",
        forward,
        init=init,
        dims={"nO": None, "nL": None},
        attrs={"name": name, "options_file": options_file, "weight_file": weight_file, "archive": archive,
               "frozen": frozen, "max_length": max_length, "precision": precision,
               "batch_size": batch_size, "max_batch_tokens": max_batch_tokens,
               "train_cache": DocCache(train_cache_mb, train_cache_dtype),
               "replace_listener_cfg": replace_listener_cfg},
        shims=[TorchShim(build_bilm)],
    )


@registry.architectures("spacy-elmo.ElmoModel.v1")
def ElmoModel_v1(options_file: Optional[str] = None, weight_file: Optional[str] = None, frozen: bool = True,
                 max_length: int = MAX_LENGTH, batch_size: int = BATCH_SIZE,
                 max_batch_tokens: int = MAX_BATCH_TOKENS) -> Model[List[Doc], List[Floats3d]]:
    """v2 without the training cache, for pipelines saved before it existed."""
    return ElmoModel(None, options_file, weight_file, None, frozen, max_length, batch_size, max_batch_tokens,
                     train_cache_mb=0)


def init(model: Model, X: Any = None, Y: Any = None) -> None:
    """Read the weight files unless the biLM is already there (deserialized or initialized before)."""
    shim = model.shims[0]
    if shim.module is None:
        attrs = model.attrs
        bilm = resolve_bilm(attrs["name"], attrs["options_file"], attrs["weight_file"], attrs["archive"])
        shim.set_module(bilm, bilm_config(bilm))
    options = shim.module.options
    model.set_dim("nO", options.output_dim)
    model.set_dim("nL", options.n_output_layers)


def get_bilm(model: Model) -> ContextualBiLM:
    if model.shims[0].module is None:
        model.initialize()
    return model.shims[0].module


def doc_sequences(columns: np.ndarray, max_length: int) -> Tuple[List[int], Optional[np.ndarray], List[slice]]:
    """What the biLM reads of a Doc, from its (ORTH, IS_SPACE, SENT_START) array: the ORTH ids of its
    non-whitespace tokens, their positions in the Doc (None when that is every token), and a slice
    of them per sequence (a sentence, or the whole Doc without sentence boundaries, cut into
    windows of at most `max_length`)."""
    orths = columns[:, 0].tolist()
    spaces = columns[:, 1] != 0
    kept = np.flatnonzero(~spaces) if spaces.any() else None
    if kept is not None:
        orths = [orths[i] for i in kept.tolist()]
    bounds = [0, len(orths)]
    if len(columns) > 1 and columns[1:, 2].any():
        starts = np.flatnonzero(columns[:, 2] == 1)
        if kept is not None:
            starts = np.searchsorted(kept, starts)
        bounds = sorted({0, len(orths), *starts.tolist()})
    slices = [slice(i, min(i + max_length, end)) for begin, end in zip(bounds, bounds[1:])
              for i in range(begin, end, max_length)]
    return orths, kept, slices


def get_embedder(model: Model, bilm: ContextualBiLM) -> Embedder:
    """The core Embedder over the model's module, for runs without autograd. With a frozen biLM it
    keeps the char-CNN vectors of frequent tokens across batches; weights that may change get no cache."""
    frozen = bool(model.attrs["frozen"])
    precision = model.attrs.get("precision", PRECISION)
    embedder = model.attrs.get("embedder")
    if (embedder is None or embedder.bilm is not bilm or bool(embedder.cache_size) != frozen
            or embedder.precision != precision):
        embedder = Embedder(bilm, precision=precision, **({} if frozen else {"cache_size": 0}))
        model.attrs["embedder"] = embedder
    return embedder


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats3d], Callable]:
    """One path for prediction, frozen and fine-tuned training: `batch_layers` makes every batch's
    layers, under autograd only when the biLM trains. Arrays stay on the model's device from the
    char ids to the output."""
    bilm = get_bilm(model)
    train = is_train and not model.attrs["frozen"]
    cache: DocCache = model.attrs["train_cache"]
    use_cache = is_train and not train and cache.max_bytes > 0
    options = bilm.options
    outputs: List[Floats3d] = []
    pieces, misses = [], {}
    strings = docs[0].vocab.strings if docs else None
    for d, doc in enumerate(docs):
        columns = doc.to_array([ORTH, IS_SPACE, SENT_START])
        if use_cache:
            key = cache.key(columns)
            found = cache.get(key)
            if found is not None:
                outputs.append(found)
                continue
            misses[d] = key
        outputs.append(model.ops.alloc3f(options.n_output_layers, len(doc), options.output_dim))
        orths, kept, slices = doc_sequences(columns, model.attrs["max_length"])
        for piece in slices:
            words = [strings[orth] for orth in orths[piece]]
            pieces.append((d, words, piece if kept is None else kept[piece]))
    groups = length_batches([len(words) + 2 for _, words, _ in pieces], model.attrs["batch_size"],
                            model.attrs["max_batch_tokens"])
    callbacks = []
    for group in groups:
        rows = [pieces[i] for i in group]
        batch = CharBatch.from_sentences([words for _, words, _ in rows], options.max_characters_per_token)
        if train:
            layers = batch_layers(bilm.train(), batch)
            callbacks.append((rows, layers))
        else:
            layers = get_embedder(model, bilm).layers(batch)
        found = torch2xp(layers, ops=model.ops)
        for b, (d, words, target) in enumerate(rows):
            outputs[d][:, target] = found[:, b, 1 : len(words) + 1]
    for d, key in misses.items():
        cache.put(key, outputs[d])

    def backprop(d_outputs: List[Floats3d]) -> List[Doc]:
        for rows, layers in callbacks:
            d_layers = model.ops.alloc4f(*layers.shape)
            for b, (d, words, target) in enumerate(rows):
                d_layers[:, b, 1 : len(words) + 1] = d_outputs[d][:, target]
            torch.autograd.backward(layers, grad_tensors=xp2torch(d_layers, device=layers.device))
        return []

    return outputs, backprop
