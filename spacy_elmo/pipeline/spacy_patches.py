"""Two spaCy paths patched so that Docs rebuilt from bytes get their ELMo vector hooks back.

Why patch: spaCy cannot serialize `user_hooks`, so a Doc that crosses processes
(`nlp.pipe(n_process=...)`) or comes out of `DocBin.get_docs` keeps `doc._.elmo` or `doc._.elmo_vectors`
but loses the hooks, and `.vector` silently falls back to static vectors or `doc.tensor`. Neither path
offers an extension point, so `install_patches` wraps `Language.pipe` and `DocBin.get_docs` (hooks back
on each Doc keeping ELMo layers or vectors) and `Language._multiprocessing_pipe` (workers take our
hooks off before serializing, so spaCy does not warn W109 about them). Building an `elmo` component calls
`install_patches`; it is idempotent, and `uninstall_patches` puts spaCy's functions back.
A direct `Doc.from_bytes`/`Doc.from_disk` is not covered: call `restore_hooks` there.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Iterator, List, Tuple

from spacy.language import Language
from spacy.tokens import Doc, DocBin

from .hooks import OUR_HOOKS, attach_hooks, keeps_vectors

_MARK = "_spacy_elmo_patch"


def _restore_if_annotated(doc: Any) -> None:
    if isinstance(doc, Doc) and "vector" not in doc.user_token_hooks and keeps_vectors(doc):
        attach_hooks(doc)


def _restoring(doc_of: Callable[[Any, dict], Any]) -> Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]]:
    """A wrapper for a generator of Docs that puts the hooks back on each Doc it yields."""
    def wrap(method: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @functools.wraps(method)
        def restoring(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for item in method(*args, **kwargs):
                _restore_if_annotated(doc_of(item, kwargs))
                yield item

        return restoring

    return wrap


def _strip_hooks(docs: Iterable[Doc]) -> Iterator[Doc]:
    """The last step of an `nlp.pipe(n_process=...)` worker: our hooks off each Doc before spaCy
    serializes it; the parent's `Language.pipe` puts them back. Other hooks stay, with spaCy's warning."""
    for doc in docs:
        for hooks in (doc.user_hooks, doc.user_token_hooks, doc.user_span_hooks):
            for key in [key for key, hook in hooks.items() if hook in OUR_HOOKS]:
                del hooks[key]
        yield doc


def _stripping_in_workers(method: Callable[..., Iterator[Doc]]) -> Callable[..., Iterator[Doc]]:
    @functools.wraps(method)
    def stripping(self: Language, texts: Any, pipes: Iterable[Callable[..., Iterator[Doc]]], *args: Any,
                  **kwargs: Any) -> Iterator[Doc]:
        return method(self, texts, [*pipes, _strip_hooks], *args, **kwargs)

    return stripping


_PATCHES: List[Tuple[type, str, Callable[[Callable], Callable]]] = [
    (Language, "pipe", _restoring(lambda item, kwargs: item[0] if kwargs.get("as_tuples") else item)),
    (Language, "_multiprocessing_pipe", _stripping_in_workers),
    (DocBin, "get_docs", _restoring(lambda item, kwargs: item)),
]


def install_patches() -> None:
    """Wrap the three spaCy methods once; a method already wrapped by us is left as it is."""
    for owner, name, wrap in _PATCHES:
        current = vars(owner)[name]
        if not getattr(current, _MARK, False):
            patched = wrap(current)
            setattr(patched, _MARK, True)
            setattr(owner, name, patched)


def uninstall_patches() -> None:
    """Put spaCy's own methods back (a no-op when not installed, or when someone wrapped ours since)."""
    for owner, name, _ in _PATCHES:
        current = vars(owner)[name]
        while getattr(current, _MARK, False):
            current = current.__wrapped__
            setattr(owner, name, current)
