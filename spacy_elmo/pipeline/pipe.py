"""The `elmo` pipeline component: runs the biLM, stores its layers on the Doc, serves listeners.

Prediction hands its listeners all layers as device arrays (`PredictedLayers`) and keeps on each Doc
what `store` says: all layers (`doc._.elmo`), the token vectors (`doc._.elmo_vectors`) or nothing, with
the vector hooks where something is kept, and optionally `doc.tensor`. Training hands each batch's
layers to the listeners of downstream components (spaCy's Tok2Vec pattern): every listener but the
last accumulates its gradient, the last one backpropagates the sum once, and spaCy steps the optimizer
once per batch. A frozen biLM (the default) runs without autograd and never gets optimizer state.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer
from thinc.types import Floats3d

from ..errors import ElmoError, WeightsError
from .hooks import (EXTENSION, MODE_EXTENSION, VECTORS_EXTENSION, attach_hooks, check_store, check_vector_mode,
                    install_extensions, mix_layers, set_or_clear)
from .listener import ElmoListener, PredictedLayers, no_backprop
from .model import ARCHITECTURE, ElmoModel
from .spacy_patches import install_patches

DEFAULT_MODEL = {"@architectures": ARCHITECTURE,
                 **{p.name: p.default for p in inspect.signature(ElmoModel).parameters.values()}}
"""The factory's default model: the architecture with its own defaults, written only there."""
SAVED_BEFORE_STORE = "layers"
"""What a pipeline saved before the `store` setting existed kept on each Doc (float32, as store_dtype's default)."""


@Language.factory(
    "elmo",
    assigns=[f"doc._.{EXTENSION}", f"doc._.{VECTORS_EXTENSION}", f"doc._.{MODE_EXTENSION}"],
    default_config={"model": DEFAULT_MODEL,
                    "vectors": "average", "set_doc_tensor": False, "store": "auto", "store_dtype": "float32"},
)
def make_elmo(nlp: Language, name: str, model: Model[List[Doc], List[Floats3d]], vectors: Union[str, int],
              set_doc_tensor: bool, store: str, store_dtype: str) -> "ElmoComponent":
    """`vectors` picks what `token.vector` is: "average" of the layers, "top", a layer index, or "concat".
    `set_doc_tensor` also writes those vectors to `doc.tensor`; off by default because a spaCy
    Tok2Vec owns `doc.tensor` and its listeners read it. `store` is what each Doc keeps: "layers"
    (`doc._.elmo`), "vectors" (`doc._.elmo_vectors`), "none", or "auto": none when listeners
    read the biLM, else layers. `store_dtype` "float16" halves what is kept."""
    return ElmoComponent(nlp.vocab, model, name, vectors=vectors, set_doc_tensor=set_doc_tensor, store=store,
                         store_dtype=store_dtype)


class ElmoComponent(TrainablePipe):
    """The `elmo` component; its biLM is the Thinc model `spacy-elmo.ElmoModel.v2`."""

    def __init__(self, vocab: Vocab, model: Model, name: str = "elmo", *, vectors: Union[str, int] = "average",
                 set_doc_tensor: bool = False, store: str = "auto", store_dtype: str = "float32") -> None:
        install_extensions()
        install_patches()  # Docs from DocBin and n_process get their hooks back; see spacy_patches
        check_vector_mode(vectors)
        check_store(store, store_dtype)
        self.vocab = vocab
        self.model = model
        self.name = name
        self.listener_map: Dict[str, List[ElmoListener]] = {}
        self.predicted = PredictedLayers(rerun=self.predict)
        self.cfg: Dict[str, Any] = {"vectors": vectors, "set_doc_tensor": set_doc_tensor, "store": store,
                                    "store_dtype": store_dtype}

    @property
    def frozen(self) -> bool:
        """Whether the biLM stays fixed in training; a callback may flip it to unfreeze the biLM later."""
        return bool(self.model.attrs["frozen"])

    @frozen.setter
    def frozen(self, value: bool) -> None:
        self.model.attrs["frozen"] = bool(value)

    @property
    def store(self) -> str:
        """What each Doc keeps now: the `store` setting, "auto" resolved by whether listeners read the biLM."""
        store = self.cfg["store"]
        if store == "auto":
            return "none" if self.listeners else "layers"
        return store

    @property
    def listeners(self) -> List[ElmoListener]:
        return [m for c in self.listening_components for m in self.listener_map[c]]

    @property
    def listening_components(self) -> List[str]:
        return list(self.listener_map.keys())

    def add_listener(self, listener: ElmoListener, component_name: str) -> None:
        self.listener_map.setdefault(component_name, [])
        if listener not in self.listener_map[component_name]:
            self.listener_map[component_name].append(listener)
        listener.predicted = self.predicted
        if self.model.has_dim("nO"):
            listener.size(self.model.get_dim("nL"), self.model.get_dim("nO"))

    def remove_listener(self, listener: ElmoListener, component_name: str) -> bool:
        listeners = self.listener_map.get(component_name, [])
        if listener not in listeners:
            return False
        listeners.remove(listener)
        listener.predicted = PredictedLayers()
        if not listeners:
            del self.listener_map[component_name]
        return True

    def find_listeners(self, component: Any) -> None:
        """Register the ElmoListener layers of `component` whose upstream is "*" or this component."""
        if isinstance(getattr(component, "model", None), Model):
            for node in component.model.walk():
                if isinstance(node, ElmoListener) and node.upstream_name in ("*", self.name):
                    self.add_listener(node, component.name)

    def predict(self, docs: Iterable[Doc]) -> List[Floats3d]:
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Sequence[Doc], outputs: List[Floats3d]) -> None:
        """Numpy copies of what `store` keeps for users (and `doc.tensor`); listeners get the device arrays."""
        docs, mode, store, dtype = list(docs), self.cfg["vectors"], self.store, self.cfg["store_dtype"]
        tensor = self.cfg["set_doc_tensor"]
        check_store(self.cfg["store"], dtype)
        if outputs:
            check_vector_mode(mode, outputs[0].shape[0])
        kept_layers = []
        for doc, layers in zip(docs, outputs):
            host = self.model.ops.to_numpy(layers) if store != "none" or tensor else None
            # np.array copies: a view of one layer would keep all of them alive
            vectors = np.array(mix_layers(host, mode)) if store == "vectors" or tensor else None
            kept = host.astype(dtype, copy=False) if store == "layers" else None
            set_or_clear(doc, EXTENSION, kept)
            set_or_clear(doc, VECTORS_EXTENSION, vectors.astype(dtype, copy=False) if store == "vectors" else None)
            doc._.set(MODE_EXTENSION, mode)
            if tensor:
                doc.tensor = vectors
            if store != "none":
                attach_hooks(doc)
            kept_layers.append(kept)
        self.predicted.keep(docs, kept_layers, outputs)

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd: Optional[Optimizer] = None,
               losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        if losses is None:
            losses = {}
        validate_examples(examples, "ElmoComponent.update")
        docs = [eg.predicted for eg in examples]
        losses.setdefault(self.name, 0.0)
        outputs, bp_outputs = self.model.begin_update(docs)
        batch_id = ElmoListener.get_batch_id(docs)
        if self.frozen:
            for listener in self.listeners:
                listener.receive(batch_id, outputs, no_backprop)
            return losses
        d_outputs = [self.model.ops.alloc3f(*x.shape) for x in outputs]

        def accumulate_gradient(one_d_outputs: List[Floats3d]) -> List[Doc]:
            for total, d in zip(d_outputs, one_d_outputs):
                total += d
                losses[self.name] += float((d**2).sum())
            return []

        def backprop(one_d_outputs: List[Floats3d]) -> List[Doc]:
            accumulate_gradient(one_d_outputs)
            bp_outputs(d_outputs)
            if sgd is not None:
                self.finish_update(sgd)
            return []

        for listener in self.listeners[:-1]:
            listener.receive(batch_id, outputs, accumulate_gradient)
        if self.listeners:
            self.listeners[-1].receive(batch_id, outputs, backprop)
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        if not self.frozen:
            self.model.finish_update(sgd)

    def get_loss(self, examples: Iterable[Example], scores: Any) -> None:
        pass

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None) -> None:
        """Read the weight files (unless already loaded) and tell every listener the biLM's size."""
        validate_get_examples(get_examples, "ElmoComponent.initialize")
        self.model.initialize()
        check_vector_mode(self.cfg["vectors"], self.model.get_dim("nL"))
        for listener in self.listeners:
            listener.size(self.model.get_dim("nL"), self.model.get_dim("nO"))
        if self.cfg["set_doc_tensor"] and nlp is not None:
            readers = [name for name, proc in nlp.pipeline
                       if proc is not self and getattr(proc, "listening_components", None) and not isinstance(proc, ElmoComponent)]
            if readers:
                warnings.warn(f"'{self.name}' has set_doc_tensor = true but {readers} also feed listeners through "
                              "doc.tensor; the component that runs last overwrites it. Prefer set_doc_tensor = false.")

    def from_disk(self, path: Any, *, exclude: Iterable[str] = tuple()) -> "ElmoComponent":
        """TrainablePipe.from_disk, with a missing, truncated or damaged `model` file named in the error."""
        model_file = Path(path) / "model"
        if "model" not in exclude and not model_file.is_file():
            raise WeightsError(f"{model_file}: missing; the saved pipeline is incomplete, save it again")
        try:
            return self._load_saved_cfg(lambda: super(ElmoComponent, self).from_disk(path, exclude=exclude), exclude)
        except ElmoError as err:
            raise type(err)(f"{model_file}: {err}") from None
        except Exception as err:  # msgpack and Thinc report damaged bytes as many types
            raise WeightsError(f"{model_file}: not a readable spacy-elmo model ({type(err).__name__}: "
                               f"{str(err)[:200]}); save the pipeline again or restore a copy") from None

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "ElmoComponent":
        return self._load_saved_cfg(lambda: super(ElmoComponent, self).from_bytes(bytes_data, exclude=exclude),
                                    exclude)

    def _load_saved_cfg(self, load: Callable[[], Any], exclude: Iterable[str]) -> "ElmoComponent":
        """`load` (TrainablePipe's, which updates `cfg` from the saved one), with `store` and
        `store_dtype` as the config gives them (the saved config, or an override at load). spaCy fills
        the factory default "auto" into a config saved before `store` existed; such a pipeline, told
        by a saved cfg without `store`, kept every layer and goes on doing so."""
        if "cfg" in exclude:
            load()
            return self
        given = {key: self.cfg.pop(key) for key in ("store", "store_dtype")}
        try:
            load()
        finally:
            saved_before = "store" not in self.cfg
            self.cfg.update(given)
        if saved_before and given["store"] == "auto":
            self.cfg["store"] = SAVED_BEFORE_STORE
        return self

    def add_label(self, label: str) -> int:
        raise NotImplementedError
