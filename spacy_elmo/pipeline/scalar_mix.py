"""`spacy-elmo.ScalarMix.v1`: each downstream component's own softmax layer weights and gamma.

The paper's task-specific ELMo: the torch ScalarMix (bilm/scalar_mix.py) in a TorchShim, so its
weights are trained and saved with the component even when the biLM is frozen.
"""
from __future__ import annotations

from itertools import accumulate
from typing import Callable, List, Optional, Tuple

from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d, Floats3d

from ..bilm.scalar_mix import ScalarMix
from .shim import TorchShim


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
    ends = list(accumulate(x.shape[1] for x in Xs))[:-1]
    Xtorch = xp2torch(xp.concatenate(Xs, axis=1), requires_grad=is_train, device=shim.device)
    Ytorch, torch_backprop = shim(ArgsKwargs(args=(Xtorch,), kwargs={}), is_train)
    Ys = xp.split(torch2xp(Ytorch, ops=model.ops), ends, axis=0)

    def backprop(dYs: List[Floats2d]) -> List[Floats3d]:
        dY = xp2torch(xp.concatenate(dYs, axis=0), device=Ytorch.device)
        dX = torch_backprop(ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": dY}))
        return xp.split(torch2xp(dX.args[0], ops=model.ops), ends, axis=1)

    return Ys, backprop
