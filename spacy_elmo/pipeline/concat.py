"""ELMo added to a component's usual token features, the paper's way (Peters et al. 2018, §3.3).

The paper keeps the task model and its word representation and concatenates the task's own
ELMo mix to that representation before the task's contextual encoder. Here the representation is
spaCy's embedding layer (MultiHashEmbed: NORM/PREFIX/SUFFIX/SHAPE, optional static vectors) and
the encoder is spaCy's (MaxoutWindowEncoder, or TorchBiLSTMEncoder, the paper's task biLSTM).
A Maxout layer mixes the concatenation down to the encoder's width, as MultiHashEmbed mixes its
own features, so the baseline is exactly this model without the ELMo branch and that layer.
For SST the paper also concatenated ELMo to the encoder's output (§4, Table 1):
`spacy-elmo.ElmoInOutTok2Vec.v1`, a second listener with its own scalar mix.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Maxout, Model, chain, concatenate, with_array
from thinc.types import Floats2d


@registry.architectures("spacy-elmo.ElmoConcatTok2Vec.v1")
def ElmoConcatTok2Vec(elmo: Model[List[Doc], List[Floats2d]], embed: Model[List[Doc], List[Floats2d]],
                      encode: Model[List[Floats2d], List[Floats2d]], width: int,
                      maxout_pieces: int = 3) -> Model[List[Doc], List[Floats2d]]:
    """encode(Maxout([elmo(doc); embed(doc)])) with output width `width` (the encoder's width).

    `elmo` is an ELMo feature model such as `spacy-elmo.ElmoListener.v1` (its own scalar mix and
    dropout; `project = false` feeds the mix unprojected, as in the paper)."""
    mix = with_array(Maxout(nO=width, nP=maxout_pieces, normalize=True))
    model = chain(concatenate(elmo, embed), mix, encode)
    model.set_dim("nO", width)
    model.set_ref("embed", embed)
    model.set_ref("encode", encode)
    model.set_ref("elmo", elmo)
    return model


@registry.architectures("spacy-elmo.ElmoInOutTok2Vec.v1")
def ElmoInOutTok2Vec(elmo: Model[List[Doc], List[Floats2d]], elmo_output: Model[List[Doc], List[Floats2d]],
                     embed: Model[List[Doc], List[Floats2d]], encode: Model[List[Floats2d], List[Floats2d]],
                     width: int, maxout_pieces: int = 3) -> Model[List[Doc], List[Floats2d]]:
    """[encode(Maxout([elmo(doc); embed(doc)])); elmo_output(doc)]: ELMo at the encoder's input and output.

    `elmo_output` is a second ELMo feature model with its own scalar mix (the paper learns separate
    weights for each place); its width is added to `width` once known (the biLM's, unless projected)."""
    inner = ElmoConcatTok2Vec(elmo, embed, encode, width, maxout_pieces)
    model = Model("elmo-in-out-tok2vec", in_out_forward, init=in_out_init, layers=[concatenate(inner, elmo_output)],
                  dims={"nO": width + elmo_output.get_dim("nO") if elmo_output.has_dim("nO") else None})
    for name in ("embed", "encode", "elmo"):
        model.set_ref(name, inner.get_ref(name))
    model.set_ref("elmo_output", elmo_output)
    return model


def in_out_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    return model.layers[0](docs, is_train)


def in_out_init(model: Model, X: Optional[List[Doc]] = None, Y: Optional[Any] = None) -> None:
    """Initialises the layers without Y: it holds the task's labels, which thinc would take as the
    width of every layer whose width is not known yet (the static vectors' among them)."""
    both = model.layers[0]
    both.initialize(X=X)
    if both.has_dim("nO"):
        model.set_dim("nO", both.get_dim("nO"))
