"""The torch side of the Thinc models: a PyTorchShim built from msgpack-able arguments.

So `nlp.to_disk` stores a module's options with its weights, and `spacy.load` rebuilds the module
(the biLM, a scalar mix) without the original files.
"""
from __future__ import annotations

import hashlib
from io import BytesIO
from typing import Any, Callable, Dict, Optional

import srsly
import torch
from thinc.api import ArgsKwargs, PyTorchShim, get_torch_default_device

from ..errors import WeightsError


class TorchShim(PyTorchShim):
    """A PyTorchShim whose module is made by `build(**kwargs)` when its size is known.

    The kwargs travel in the serialized bytes, so deserializing needs no module built beforehand.
    """

    def __init__(self, build: Callable[..., torch.nn.Module], module: Optional[torch.nn.Module] = None,
                 kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(module, config={"kwargs": kwargs})
        self._build = build

    @property
    def module(self) -> Optional[torch.nn.Module]:
        return self._model

    def set_module(self, module: torch.nn.Module, kwargs: Dict[str, Any]) -> None:
        self.cfg = {"kwargs": kwargs}
        self._model = module.to(get_torch_default_device())

    def predict(self, inputs: ArgsKwargs) -> Any:
        """PyTorchShim.predict without its eval()/train() switch on every call, a walk over all
        submodules that costs more than a small batch; these modules have no dropout at inference."""
        with torch.inference_mode():
            return self._model(*inputs.args, **inputs.kwargs)

    @staticmethod
    def _digest(config: Dict[str, Any], state: bytes) -> str:
        """sha256 of the options (the build kwargs) and the weights, stored with them and checked on load."""
        return hashlib.sha256(srsly.json_dumps(config, sort_keys=True).encode() + state).hexdigest()

    def to_bytes(self) -> bytes:
        state = b""
        if self._model is not None:
            buffer = BytesIO()
            torch.save(self._model.state_dict(), buffer)
            state = buffer.getvalue()
        return srsly.msgpack_dumps({"config": self.cfg, "state": state, "sha256": self._digest(self.cfg, state)})

    def from_bytes(self, bytes_data: bytes) -> "TorchShim":
        """The module back from `to_bytes`; damaged bytes are a WeightsError (pipelines saved before
        checksums existed load unchecked)."""
        try:
            msg = srsly.msgpack_loads(bytes_data)
            kwargs = msg["config"].get("kwargs")
        except Exception as err:  # msgpack reports damage as many types
            raise WeightsError(f"the serialized elmo model is not readable ({type(err).__name__}); "
                               "save the pipeline again or restore a copy") from None
        if kwargs is None:
            return self
        if "sha256" in msg and msg["sha256"] != self._digest(msg["config"], msg["state"]):
            raise WeightsError("checksum mismatch in the serialized elmo model: its weights or options changed after "
                               "it was saved (the file is damaged); save the pipeline again or restore a copy")
        module = self._build(**kwargs)
        device = get_torch_default_device()
        try:
            module.load_state_dict(torch.load(BytesIO(msg["state"]), map_location=device, weights_only=True))
        except Exception as err:  # torch reports damage as RuntimeError, UnpicklingError, EOFError, ...
            raise WeightsError(f"the serialized elmo weights are unreadable or do not fit their options "
                               f"({type(err).__name__}); save the pipeline again or restore a copy") from None
        self.set_module(module, kwargs)
        return self
