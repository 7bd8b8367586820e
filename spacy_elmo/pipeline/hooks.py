"""Contextual `.vector`, `.has_vector` and `.similarity` for Docs, Spans and Tokens, from what the Doc keeps.

A Doc keeps either all layers (`doc._.elmo`) or only the token vectors (`doc._.elmo_vectors`), see the
component's `store`. Hooks win over static vocab vectors and over spaCy's "same text means similarity
1.0" shortcut. They are module-level functions so pickled Docs keep them. spaCy cannot serialize hooks,
so Docs rebuilt from bytes lose them (not the arrays): `restore_hooks` puts them back, and
`spacy_patches` does it by itself for `nlp.pipe(n_process=...)` and `DocBin.get_docs`.
"""
from __future__ import annotations

from typing import List, Optional, Union

import numpy as np
from spacy.tokens import Doc, Span, Token

from ..errors import InputError

EXTENSION = "elmo"
VECTORS_EXTENSION = "elmo_vectors"
MODE_EXTENSION = "elmo_vector_mode"
VECTOR_MODES = ("average", "top", "concat")
STORES = ("auto", "layers", "vectors", "none")
STORE_DTYPES = ("float32", "float16")


def install_extensions() -> None:
    """`doc._.elmo`: (N + 1, n_tokens, 2P) numpy layers; `doc._.elmo_vectors`: (n_tokens, D) numpy token
    vectors; `doc._.elmo_vector_mode`: how layers become `.vector`, set on every Doc the component annotates."""
    for name, default in ((EXTENSION, None), (VECTORS_EXTENSION, None), (MODE_EXTENSION, "average")):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=default)


def user_data_key(name: str) -> tuple:
    """Where spaCy keeps `doc._.<name>` in `doc.user_data`; it survives DocBin and n_process, hooks do not."""
    return ("._.", name, None, None)


def set_or_clear(doc: Doc, name: str, value: Optional[np.ndarray]) -> None:
    """`doc._.<name> = value`, or no entry at all for None, so DocBin and n_process carry nothing for it."""
    if value is None:
        doc.user_data.pop(user_data_key(name), None)
    else:
        doc._.set(name, value)


def annotated(doc: Doc) -> bool:
    """Whether an `elmo` component ran on the Doc, whatever it kept."""
    return user_data_key(MODE_EXTENSION) in doc.user_data


def keeps_vectors(doc: Doc) -> bool:
    return any(doc.user_data.get(user_data_key(name)) is not None for name in (EXTENSION, VECTORS_EXTENSION))


def check_vector_mode(mode: Union[str, int], n_layers: Optional[int] = None) -> None:
    """The `vectors` option; a layer index is checked once the number of layers is known."""
    if isinstance(mode, bool) or not isinstance(mode, (str, int)):
        raise InputError(f"elmo option 'vectors' must be one of {VECTOR_MODES} or a layer index, found {mode!r}")
    if isinstance(mode, str) and mode not in VECTOR_MODES:
        raise InputError(f"elmo option 'vectors' must be one of {VECTOR_MODES} or a layer index, found {mode!r}")
    if isinstance(mode, int) and n_layers is not None and not -n_layers <= mode < n_layers:
        raise InputError(f"elmo option 'vectors' = {mode} is not a layer index of a biLM with {n_layers} layers")


def check_store(store: str, dtype: str) -> None:
    if store not in STORES:
        raise InputError(f"elmo option 'store' must be one of {STORES}, found {store!r}")
    if dtype not in STORE_DTYPES:
        raise InputError(f"elmo option 'store_dtype' must be one of {STORE_DTYPES}, found {dtype!r}")


def mix_layers(layers: np.ndarray, mode: Union[str, int]) -> np.ndarray:
    """(N + 1, n, D) layers to (n, D') vectors: mean of the layers, top layer, one layer, or all side by side."""
    if mode == "average":
        return layers.mean(axis=0)
    if mode == "top":
        return layers[-1]
    if mode == "concat":
        n_layers, n_tokens, width = layers.shape
        return np.ascontiguousarray(layers.transpose(1, 0, 2).reshape(n_tokens, n_layers * width))
    return layers[mode]


def _mixed(doc: Doc, keep: List[int]) -> np.ndarray:
    """(len(keep), D) float32 vectors of the tokens at `keep`, from whichever array the Doc keeps."""
    vectors = doc._.get(VECTORS_EXTENSION)
    found, name = (vectors, VECTORS_EXTENSION) if vectors is not None else (doc._.get(EXTENSION), EXTENSION)
    if found is None:
        raise InputError("this Doc has no ELMo vectors (doc._.elmo and doc._.elmo_vectors are None): run the 'elmo' "
                         "component first, with store = \"layers\" or \"vectors\"")
    n_tokens = found.shape[0] if vectors is not None else found.shape[1]
    if n_tokens != len(doc):
        raise InputError(f"doc._.{name} covers {n_tokens} tokens but the Doc has {len(doc)}: it was retokenized "
                         "after the 'elmo' component ran; put 'elmo' after merge_entities/merge_noun_chunks")
    if vectors is not None:
        return np.asarray(vectors[keep], dtype="float32")
    return mix_layers(np.asarray(found[:, keep], dtype="float32"), doc._.get(MODE_EXTENSION))


def _span_vector(doc: Doc, start: int, end: int) -> np.ndarray:
    """Mean over the non-whitespace tokens (whitespace tokens have no ELMo vector)."""
    keep = [i for i in range(start, end) if not doc[i].is_space]
    vectors = _mixed(doc, keep)
    return vectors.mean(axis=0) if keep else np.zeros(vectors.shape[1], dtype="float32")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else 0.0


def token_vector(token: Token) -> np.ndarray:
    return _span_vector(token.doc, token.i, token.i + 1)


def token_has_vector(token: Token) -> bool:
    return keeps_vectors(token.doc) and not token.is_space


def span_vector(span: Span) -> np.ndarray:
    return _span_vector(span.doc, span.start, span.end)


def span_has_vector(span: Span) -> bool:
    return keeps_vectors(span.doc) and any(not token.is_space for token in span)


def doc_vector(doc: Doc) -> np.ndarray:
    return _span_vector(doc, 0, len(doc))


def doc_has_vector(doc: Doc) -> bool:
    return keeps_vectors(doc) and any(not token.is_space for token in doc)


def doc_vector_norm(doc: Doc) -> float:
    return float(np.linalg.norm(doc_vector(doc)))


def similarity(obj: Union[Doc, Span, Token], other: Union[Doc, Span, Token]) -> float:
    """Cosine of the two contextual vectors; 0.0 when either is all zeros."""
    return _cosine(obj.vector, other.vector)


def restore_hooks(doc: Doc) -> Doc:
    """(Re)attach the vector hooks of a Doc that keeps ELMo layers or vectors, e.g. after DocBin or n_process > 1."""
    _mixed(doc, [])
    return attach_hooks(doc)


#: Every hook this module attaches (Doc, Span and Token hooks alike).
OUR_HOOKS = frozenset({token_vector, token_has_vector, span_vector, span_has_vector, doc_vector, doc_has_vector,
                       doc_vector_norm, similarity})


def attach_hooks(doc: Doc) -> Doc:
    doc.user_token_hooks.update(vector=token_vector, has_vector=token_has_vector, similarity=similarity)
    doc.user_span_hooks.update(vector=span_vector, has_vector=span_has_vector, similarity=similarity)
    doc.user_hooks.update(vector=doc_vector, has_vector=doc_has_vector, vector_norm=doc_vector_norm,
                          similarity=similarity)
    return doc
