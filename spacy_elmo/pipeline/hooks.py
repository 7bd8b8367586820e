"""Contextual `.vector`, `.has_vector` and `.similarity` for Docs, Spans and Tokens, from `doc._.elmo`.

Hooks win over static vocab vectors and over spaCy's "same text means similarity 1.0" shortcut.
They are module-level functions so pickled Docs keep them. spaCy cannot serialize hooks, so Docs
rebuilt from bytes lose them (not `doc._.elmo`): `restore_hooks` puts them back, and
`spacy_patches` does it by itself for `nlp.pipe(n_process=...)` and `DocBin.get_docs`.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
from spacy.tokens import Doc, Span, Token

from ..errors import InputError

EXTENSION = "elmo"
MODE_EXTENSION = "elmo_vector_mode"
VECTOR_MODES = ("average", "top", "concat")


def install_extensions() -> None:
    """`doc._.elmo`: (N + 1, n_tokens, 2P) float32 numpy; `doc._.elmo_vector_mode`: how layers become `.vector`."""
    if not Doc.has_extension(EXTENSION):
        Doc.set_extension(EXTENSION, default=None)
    if not Doc.has_extension(MODE_EXTENSION):
        Doc.set_extension(MODE_EXTENSION, default="average")


def check_vector_mode(mode: Union[str, int], n_layers: Optional[int] = None) -> None:
    """The `vectors` option; a layer index is checked once the number of layers is known."""
    if isinstance(mode, bool) or not isinstance(mode, (str, int)):
        raise InputError(f"elmo option 'vectors' must be one of {VECTOR_MODES} or a layer index, found {mode!r}")
    if isinstance(mode, str) and mode not in VECTOR_MODES:
        raise InputError(f"elmo option 'vectors' must be one of {VECTOR_MODES} or a layer index, found {mode!r}")
    if isinstance(mode, int) and n_layers is not None and not -n_layers <= mode < n_layers:
        raise InputError(f"elmo option 'vectors' = {mode} is not a layer index of a biLM with {n_layers} layers")


def mix_layers(layers: np.ndarray, mode: Union[str, int]) -> np.ndarray:
    """(N + 1, n, D) layers to (n, D') vectors: mean of the layers, top layer, one layer, or all side by side."""
    if mode == "average":
        return layers.mean(axis=0)
    if mode == "top":
        return layers[-1]
    if mode == "concat":
        return np.ascontiguousarray(layers.transpose(1, 0, 2).reshape(layers.shape[1], -1))
    return layers[mode]


def _layers(doc: Doc) -> np.ndarray:
    layers = doc._.get(EXTENSION)
    if layers is None:
        raise InputError("this Doc has no ELMo annotation (doc._.elmo is None); run the 'elmo' component first")
    if layers.shape[1] != len(doc):
        raise InputError(f"doc._.elmo covers {layers.shape[1]} tokens but the Doc has {len(doc)}: it was retokenized "
                         "after the 'elmo' component ran; put 'elmo' after merge_entities/merge_noun_chunks")
    return layers


def _span_vector(doc: Doc, start: int, end: int) -> np.ndarray:
    """Mean over the non-whitespace tokens (whitespace tokens have no ELMo vector)."""
    layers = _layers(doc)
    keep = [i for i in range(start, end) if not doc[i].is_space]
    mode = doc._.get(MODE_EXTENSION)
    if not keep:
        return np.zeros(mix_layers(layers[:, :0], mode).shape[1], dtype="float32")
    return mix_layers(layers[:, keep].mean(axis=1, keepdims=True), mode)[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else 0.0


def token_vector(token: Token) -> np.ndarray:
    return _span_vector(token.doc, token.i, token.i + 1)


def token_has_vector(token: Token) -> bool:
    return token.doc._.get(EXTENSION) is not None and not token.is_space


def span_vector(span: Span) -> np.ndarray:
    return _span_vector(span.doc, span.start, span.end)


def span_has_vector(span: Span) -> bool:
    return span.doc._.get(EXTENSION) is not None and any(not token.is_space for token in span)


def doc_vector(doc: Doc) -> np.ndarray:
    return _span_vector(doc, 0, len(doc))


def doc_has_vector(doc: Doc) -> bool:
    return doc._.get(EXTENSION) is not None and any(not token.is_space for token in doc)


def doc_vector_norm(doc: Doc) -> float:
    return float(np.linalg.norm(doc_vector(doc)))


def similarity(obj: Union[Doc, Span, Token], other: Union[Doc, Span, Token]) -> float:
    """Cosine of the two contextual vectors; 0.0 when either is all zeros."""
    return _cosine(obj.vector, other.vector)


def restore_hooks(doc: Doc) -> Doc:
    """(Re)attach the vector hooks of a Doc that carries `doc._.elmo`, e.g. after DocBin or n_process > 1."""
    _layers(doc)
    return attach_hooks(doc)


#: Where spaCy keeps `doc._.elmo` in `doc.user_data`; it survives DocBin and n_process, the hooks do not.
USER_DATA_KEY = ("._.", EXTENSION, None, None)
#: Every hook this module attaches (Doc, Span and Token hooks alike).
OUR_HOOKS = frozenset({token_vector, token_has_vector, span_vector, span_has_vector, doc_vector, doc_has_vector,
                       doc_vector_norm, similarity})


def attach_hooks(doc: Doc) -> Doc:
    doc.user_token_hooks.update(vector=token_vector, has_vector=token_has_vector, similarity=similarity)
    doc.user_span_hooks.update(vector=span_vector, has_vector=span_has_vector, similarity=similarity)
    doc.user_hooks.update(vector=doc_vector, has_vector=doc_has_vector, vector_norm=doc_vector_norm,
                          similarity=similarity)
    return doc
