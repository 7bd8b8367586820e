"""ELMo features for downstream components: a listener, a per-component scalar mix, and a stand-alone copy.

`spacy-elmo.ElmoListener.v1` = chain(ElmoListener, ScalarMix, Dropout, Linear): the listener hands
over all biLM layers (from the `elmo` component, whatever it keeps on the Docs),
and each downstream component learns its own softmax layer weights and gamma (the paper's
task-specific ELMo), so they are trained and saved with that component even when the biLM is frozen.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from spacy.attrs import ORTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Dropout, Linear, Model, chain, torch2xp, with_array, xp2torch
from thinc.types import Floats2d, Floats3d

from ..bilm.scalar_mix import ScalarMix
from ..errors import ElmoError
from .hooks import EXTENSION, annotated, install_extensions
from .model import LISTENER_ARCHITECTURE, TorchShim


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


def build_scalar_mix(n_layers: int, do_layer_norm: bool) -> ScalarMix:
    return ScalarMix(n_layers, do_layer_norm=do_layer_norm)


@registry.architectures("spacy-elmo.ScalarMix.v1")
def ElmoScalarMix(layer_norm: bool = False) -> Model[List[Floats3d], List[Floats2d]]:
    """Softmax-weighted sum of the layers times gamma, per token (torch ScalarMix in a PyTorchShim).
    With `layer_norm`, each layer is normalised over one Doc at a time, so results never depend on batching."""
    return Model("elmo-scalar-mix", mix_forward, init=mix_init, attrs={"layer_norm": layer_norm},
                 shims=[TorchShim(build_scalar_mix)])


def _mix_shim(model: Model, n_layers: int) -> TorchShim:
    """The shim, its module built on first sight of the layer count (it is unknown when configs are read)."""
    shim = model.shims[0]
    if shim.module is None:
        kwargs = {"n_layers": n_layers, "do_layer_norm": model.attrs["layer_norm"]}
        shim.set_module(build_scalar_mix(**kwargs), kwargs)
    return shim


def mix_init(model: Model, X: Optional[List[Floats3d]] = None, Y: Optional[object] = None) -> None:
    if X:
        _mix_shim(model, X[0].shape[0])


def mix_forward(model: Model, Xs: List[Floats3d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    xp = model.ops.xp
    if not Xs or not sum(x.shape[1] for x in Xs):
        return [model.ops.alloc2f(x.shape[1], x.shape[2]) for x in Xs], lambda dYs: [xp.zeros_like(x) for x in Xs]
    shim = _mix_shim(model, Xs[0].shape[0])
    groups = [[x] for x in Xs] if model.attrs["layer_norm"] else [Xs]
    results = [_mix_group(model, shim, group, is_train) for group in groups]
    Ys = [y for group_Ys, _ in results for y in group_Ys]

    def backprop(dYs: List[Floats2d]) -> List[Floats3d]:
        dXs, start = [], 0
        for group, (_, group_backprop) in zip(groups, results):
            dXs.extend(group_backprop(dYs[start : start + len(group)]))
            start += len(group)
        return dXs

    return Ys, backprop


def _mix_group(model: Model, shim: TorchShim, Xs: List[Floats3d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    """One torch call over the Docs of `Xs`, concatenated along the token axis."""
    xp = model.ops.xp
    ends = xp.cumsum(xp.asarray([x.shape[1] for x in Xs]))[:-1].tolist()
    Xtorch = xp2torch(xp.concatenate(Xs, axis=1), requires_grad=is_train, device=shim.device)
    Ytorch, torch_backprop = shim(ArgsKwargs(args=(Xtorch,), kwargs={}), is_train)
    Ys = xp.split(torch2xp(Ytorch, ops=model.ops), ends, axis=0)

    def backprop(dYs: List[Floats2d]) -> List[Floats3d]:
        dY = xp2torch(xp.concatenate(dYs, axis=0), device=Ytorch.device)
        dX = torch_backprop(ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": dY}))
        return xp.split(torch2xp(dX.args[0], ops=model.ops), ends, axis=1)

    return Ys, backprop


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


@registry.architectures("spacy-elmo.ElmoTok2Vec.v1")
def ElmoTok2Vec(elmo: Model[List[Doc], List[Floats3d]], width: Optional[int], mix: Model[List[Floats3d], List[Floats2d]],
                dropout: float = 0.0, project: bool = True) -> Model[List[Doc], List[Floats2d]]:
    """A component's own biLM copy instead of a listener (what `nlp.replace_listeners` puts in)."""
    return build_elmo_tok2vec(elmo, width, dropout, mix, project)
