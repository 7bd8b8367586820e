"""The ELMo tok2vec models a component's config names: listener (or biLM) -> scalar mix -> dropout -> Linear.

`spacy-elmo.ElmoListener.v1` reads the upstream `elmo` component; `spacy-elmo.ElmoTok2Vec.v1` holds its
own biLM copy, which is what `nlp.replace_listeners` puts where a listener was.
"""
from __future__ import annotations

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, chain, with_array
from thinc.types import Floats2d, Floats3d

from ..errors import ElmoError
from .listener import LISTENER_ARCHITECTURE, TOK2VEC_ARCHITECTURE, ElmoListener


def build_elmo_tok2vec(head: Model[List[Doc], List[Floats3d]], width: Optional[int], dropout: float,
                       mix: Model[List[Floats3d], List[Floats2d]], project: bool) -> Model[List[Doc], List[Floats2d]]:
    """head (listener or biLM) -> mix -> dropout -> optional Linear to `width`."""
    if project and not width:
        raise ElmoError(f"an ELMo tok2vec with project = true needs a positive width, found {width!r}")
    layers = [head, mix]
    if dropout > 0:
        layers.append(Dropout(dropout))
    if project:
        layers.append(with_array(Linear(nO=width)))
    model = chain(*layers)
    if width:
        model.set_dim("nO", width)
    model.set_ref("listener", head)
    return model


@registry.architectures(LISTENER_ARCHITECTURE)
def ElmoListenerTok2Vec(width: Optional[int], mix: Model[List[Floats3d], List[Floats2d]], upstream: str = "*",
                        dropout: float = 0.0, project: bool = True) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors of width `width` from an upstream `elmo` component. Without `project`, `width`
    is the biLM's output width (2 x projection_dim), or null to take it from the biLM."""
    listener = ElmoListener(upstream)
    if not project and width:
        listener.set_dim("nO", width)
    return build_elmo_tok2vec(listener, width, dropout, mix, project)


@registry.architectures(TOK2VEC_ARCHITECTURE)
def ElmoTok2Vec(elmo: Model[List[Doc], List[Floats3d]], width: Optional[int], mix: Model[List[Floats3d], List[Floats2d]],
                dropout: float = 0.0, project: bool = True) -> Model[List[Doc], List[Floats2d]]:
    """A component's own biLM copy instead of a listener (what `nlp.replace_listeners` puts in)."""
    return build_elmo_tok2vec(elmo, width, dropout, mix, project)
