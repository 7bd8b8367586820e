"""The listener: how a downstream component gets the `elmo` component's layers.

A listener hands over all biLM layers (from the `elmo` component, whatever it keeps on the Docs);
the tok2vec models of tok2vec.py put it in front of each component's own scalar mix. It also owns
the rewriting `nlp.replace_listeners` applies to its architecture (`replace_listener_cfg`), which
the ELMo model carries in its attrs.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from spacy.attrs import ORTH
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats3d

from ..errors import ElmoError
from .hooks import EXTENSION, annotated, install_extensions

LISTENER_ARCHITECTURE = "spacy-elmo.ElmoListener.v1"
TOK2VEC_ARCHITECTURE = "spacy-elmo.ElmoTok2Vec.v1"


class PredictedLayers:
    """The layers of the Docs its `elmo` component annotated last, as the model's device arrays.

    Listeners read them instead of `doc._.elmo`, which is a host (numpy) copy for users (or absent,
    see `store`), so on GPU the layers do not go device -> host -> device. Only the last batch is
    kept, bounding memory; a Doc whose `doc._.elmo` was replaced since falls back to `doc._.elmo`.
    `rerun` (the component's `predict`) makes the layers again for an annotated Doc that kept none
    and has left the last batch, e.g. when a downstream component's batches are larger."""

    def __init__(self, rerun: Optional[Callable[[List[Doc]], List[Floats3d]]] = None) -> None:
        self._by_id: Dict[int, Tuple[Doc, Any, Floats3d]] = {}
        self.rerun = rerun

    def keep(self, docs: Sequence[Doc], kept: Sequence[Any], outputs: Sequence[Floats3d]) -> None:
        """The layers of `docs`; `kept` is what each Doc's `doc._.elmo` was set to (None where nothing)."""
        self._by_id = {id(doc): (doc, host, layers) for doc, host, layers in zip(docs, kept, outputs)}

    def get(self, doc: Doc) -> Optional[Floats3d]:
        doc_host_layers = self._by_id.get(id(doc))
        if doc_host_layers is None or doc_host_layers[0] is not doc or doc._.get(EXTENSION) is not doc_host_layers[1]:
            return None
        return doc_host_layers[2]


class ElmoListener(Model):
    """Receives each training batch's layers from the upstream `elmo` component; reads `doc._.elmo` otherwise."""

    name = "elmo-listener"

    def __init__(self, upstream_name: str) -> None:
        super().__init__(self.name, listener_forward, dims={"nL": None, "nO": None})
        install_extensions()
        self.upstream_name = upstream_name
        self._batch_id: Optional[int] = None
        self._outputs: Optional[List[Floats3d]] = None
        self._backprop: Optional[Callable] = None
        self.predicted = PredictedLayers()

    @classmethod
    def get_batch_id(cls, inputs: List[Doc]) -> int:
        """The sum of the batch's ORTH ids (wrapping at 2**64), without a Python loop over tokens."""
        return sum(int(doc.to_array(ORTH).sum(dtype="uint64")) for doc in inputs)

    def receive(self, batch_id: int, outputs: List[Floats3d], backprop: Callable) -> None:
        self._batch_id = batch_id
        self._outputs = outputs
        self._backprop = backprop

    def verify_inputs(self, inputs: List[Doc]) -> None:
        batch_id = self.get_batch_id(inputs)
        if batch_id != self._batch_id:
            raise ElmoError(f"an ELMo listener got a batch ({batch_id}) other than the one its upstream "
                            f"'{self.upstream_name}' ran on ({self._batch_id})")

    def size(self, n_layers: int, width: int) -> None:
        for dim, value in (("nL", n_layers), ("nO", width)):
            if self.has_dim(dim) and self.get_dim(dim) != value:
                raise ElmoError(f"an ELMo listener was built for {dim}={self.get_dim(dim)} but its upstream "
                                f"'{self.upstream_name}' gives {value}: the biLM changed after the listener was trained")
            self.set_dim(dim, value)


def no_backprop(d_outputs: List[Floats3d]) -> List[Doc]:
    """Backprop of layers that get no gradient: a frozen biLM's, or those read from the Doc."""
    return []


def listener_forward(model: ElmoListener, docs: List[Doc], is_train: bool) -> Tuple[List[Floats3d], Callable]:
    if is_train and model._batch_id is not None:
        model.verify_inputs(docs)
        return model._outputs, model._backprop  # type: ignore[return-value]
    found = [_known_layers(model, doc) for doc in docs]
    rerun = [i for i, layers in enumerate(found) if layers is None and annotated(docs[i])]
    if rerun and model.predicted.rerun is not None:
        for i, layers in zip(rerun, model.predicted.rerun([docs[i] for i in rerun])):
            found[i] = layers
    return [layers if layers is not None else _no_layers(model, doc, is_train)
            for doc, layers in zip(docs, found)], no_backprop


def _known_layers(model: ElmoListener, doc: Doc) -> Optional[Floats3d]:
    """The upstream's device arrays, else the layers stored on the Doc."""
    layers = model.predicted.get(doc)
    if layers is not None:
        return layers
    layers = doc._.get(EXTENSION)
    return None if layers is None else model.ops.asarray3f(layers)


def _no_layers(model: ElmoListener, doc: Doc, is_train: bool) -> Floats3d:
    """Zeros of the right shape for a Doc no `elmo` component annotated, at prediction only."""
    if is_train:
        raise ElmoError(f"an ELMo listener got no layers from '{model.upstream_name}' and the Doc has no doc._.elmo: "
                        f"if '{model.upstream_name}' is in [training] frozen_components, also list it in "
                        "annotating_components")
    if not (model.has_dim("nL") and model.has_dim("nO")):
        raise ElmoError(f"an ELMo listener does not know the size of '{model.upstream_name}' yet: initialize the "
                        f"'{model.upstream_name}' component (it must come before its listeners in the pipeline)")
    return model.ops.alloc3f(model.get_dim("nL"), len(doc), model.get_dim("nO"))


def _listener_blocks(cfg: Any) -> List[Dict[str, Any]]:
    """The ElmoListener.v1 blocks in a config block, itself included."""
    if not isinstance(cfg, dict):
        return []
    if cfg.get("@architectures") == LISTENER_ARCHITECTURE:
        return [cfg]
    return [block for value in cfg.values() for block in _listener_blocks(value)]


def replace_listener_cfg(elmo_model_cfg: Dict[str, Any], tok2vec_cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Config of the stand-alone copy `nlp.replace_listeners` puts where a listener was.

    spaCy hands over the component's whole `model.tok2vec` block whatever the listener's path, so
    the listener is looked up inside it (`model.tok2vec.elmo` of ElmoConcatTok2Vec, for one)."""
    blocks = _listener_blocks(tok2vec_cfg) or [tok2vec_cfg]
    if len(blocks) > 1:
        raise ElmoError(f"replace_listeners cannot tell which of the {len(blocks)} {LISTENER_ARCHITECTURE} blocks "
                        "in the component's model.tok2vec config to replace; give each its own component")
    cfg = {key: value for key, value in blocks[0].items() if key != "upstream"}
    cfg["@architectures"] = TOK2VEC_ARCHITECTURE
    cfg["elmo"] = elmo_model_cfg
    return cfg
