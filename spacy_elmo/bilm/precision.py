"""Run-time arithmetic precision of biLM inference: fp32 (exact), fp16, bf16, int8.

The weights stay fp32 in the module and in saved files. Inference multiplies with forms derived from
them (packed for oneDNN or fbgemm, or rounded to bf16) that are kept per parameter and remade when
the parameter changes (its version counter or storage moves), so a loaded model packs its weights
once, not at every LSTM time step. Only the products change precision: biases, gate nonlinearities,
the LSTM cell state, clipping and the recurrent sum stay fp32.

- fp32: on a CPU, oneDNN's linear with weights reordered once into its blocked layout (the same
  fp32 arithmetic as torch.bmm up to summation order; BLAS kernels repack the 32 MB recurrent weight
  for every few-row step). Elsewhere, or without oneDNN, torch.bmm / nn.Linear.
- fp16: fbgemm's fp16-weight linear (weights rounded to fp16 and packed once, inputs and sums fp32)
  for every linear product; the char CNN's convolutions stay fp32. CPU only (x86 with AVX2 and F16C).
- bf16: inputs and weights rounded to bf16, products accumulated in fp32, each product's result
  rounded to bf16 (what a bf16 matmul returns) and then added in fp32. On a CPU without bf16
  instructions torch's bf16 kernels are ~100x slower than fp32, so there the same rounding is
  computed with fp32 kernels: identical numbers up to summation order, at fp32 speed.
- int8: every linear product (LSTM input, recurrent and cell projection, the char CNN's highway and
  projection layers) uses fbgemm dynamic quantization (per-channel int8 weights packed once,
  activations quantized per row at each call); the convolutions stay fp32. The recurrent product's
  errors feed back over time, yet they barely move the mean token cosine to fp32 (bundled model,
  100 EWT dev sentences, LSTM layers 1 / 2: 0.99909 / 0.99917; with an fp32 recurrent product
  0.99911 / 0.99919), and the product is twice as fast as fp32 on AVX2.

Every product takes its precision as an argument, which the biLM's forward passes down from its
caller (the Embedder, the spaCy model, `batch_layers`); nothing is kept in a context. Lower precisions
and packed weights are for inference: under autograd (fine-tuning) every product is
torch's differentiable fp32 one, so gradients are exact and no packed kernel, which has no gradient,
is ever differentiated.

Mixed-precision training (`pretrain --precision bf16`) instead runs the biLM under torch.autocast:
there every product here is computed in autocast's dtype (and differentiated through it), returned
as fp32, and its bias or running sum added in fp32, so the LSTM state and everything that is not a
product stay fp32 as in bf16 inference.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

from ..errors import InputError
from .settings import BATCH_SIZE, PRECISION, PRECISIONS, check_precision

__all__ = ["PRECISIONS", "autocast_products", "batched_product", "check_precision", "conv1d", "linear",
           "native_bf16", "product_precision"]
"""The names of settings.py are public here too, beside the products that use them."""

_derived: WeakIdKeyDictionary = WeakIdKeyDictionary()


def product_precision(precision: str) -> str:
    """The precision a product asked for `precision` computes in: fp32 whenever autograd records."""
    return PRECISION if torch.is_grad_enabled() else precision


@lru_cache(maxsize=None)
def _cpu_has_bf16() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 kernels on `device` are fast ones (else bf16 rounding is computed in fp32)."""
    return device.type != "cpu" or _cpu_has_bf16()


def autocast_products(x: torch.Tensor) -> bool:
    """Whether products of `x` run under torch.autocast (mixed-precision training)."""
    return torch.is_autocast_enabled(x.device.type)


def _derive(param: torch.Tensor, kind: str, make: Callable[[torch.Tensor], Any]) -> Any:
    """make(param) computed once per parameter state and kind."""
    key = (kind, param._version, param.data_ptr(), param.device)
    entry = _derived.get(param)
    if entry is None or entry[0] != key:
        with torch.no_grad():
            entry = (key, make(param.detach()))
        _derived[param] = entry
    return entry[1]


def _bf16_weight(weight: torch.Tensor) -> torch.Tensor:
    if native_bf16(weight.device):
        return _derive(weight, "bf16", lambda w: w.to(torch.bfloat16))
    return _derive(weight, "bf16-in-fp32", lambda w: w.to(torch.bfloat16).float())


def _bf16_round(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16) if native_bf16(x.device) else x.to(torch.bfloat16).float()


def _bf16_result(product: torch.Tensor) -> torch.Tensor:
    """A product as a bf16 kernel returns it (rounded to bf16), as fp32 for the sums that follow."""
    return product.to(torch.bfloat16).float()


@lru_cache(maxsize=None)
def _has_onednn() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _pack_fp32(weight: torch.Tensor) -> torch.Tensor:
    """oneDNN's blocked form of an (out, in) weight, laid out for batches of BATCH_SIZE rows."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), BATCH_SIZE)


def _fp32_linear(x: torch.Tensor, packed: torch.Tensor, add: Optional[torch.Tensor]) -> torch.Tensor:
    """add + x @ packed.T, the sum fused into the product (one pass over the result, not two)."""
    if add is None:
        return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
    return torch.ops.mkldnn._linear_pointwise.binary(x, add, packed, None, "add")


def _pack_fp16(weight: torch.Tensor) -> Any:
    """fbgemm's packed fp16 copy of an (out, in) weight."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        raise InputError("precision fp16 needs fbgemm (an x86 CPU with AVX2), which this torch lacks: use fp32")
    return torch.ops.quantized.linear_prepack_fp16(weight.float().contiguous(), None)


def _fp16_linear(x: torch.Tensor, packed: Any, add: Optional[torch.Tensor]) -> torch.Tensor:
    product = torch.ops.quantized.linear_dynamic_fp16(x, packed)
    return product if add is None else product + add


def _pack_int8(weight: torch.Tensor) -> Any:
    """fbgemm's packed form of an (out, in) weight: symmetric per-output-channel int8 (biases are
    added in fp32 by the callers)."""
    scales = (weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0).double()
    zero = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # torch marks quantized-tensor creation deprecated; the kernels remain
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch.quantize_per_channel(weight.float().cpu(), scales, zero, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(quantized, None)


def _int8_linear(x: torch.Tensor, packed: Any, add: Optional[torch.Tensor]) -> torch.Tensor:
    """add + x (..., in) times a packed weight. fbgemm quantizes activations over the whole call, from its
    min and max (7 bits, as CPUs whose int8 dot products saturate 16-bit sums need). Every row is
    scaled to max |x| = 1 first (and back after), and two anchor rows of +1 and -1 fix the range,
    so each row gets its own scale and the same numbers whatever rows share its batch."""
    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[0]
    scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
    scaled = rows.new_empty(n + 2, rows.shape[1])
    torch.div(rows, scale, out=scaled[:n])
    scaled[n] = 1.0
    scaled[n + 1] = -1.0
    product = (torch.ops.quantized.linear_dynamic(scaled, packed, True)[:n] * scale).reshape(*x.shape[:-1], -1)
    return product if add is None else product + add


PackedKernel = Tuple[Callable[[torch.Tensor], Any], Callable[[torch.Tensor, Any, Optional[torch.Tensor]], torch.Tensor]]
PACKED: Dict[str, PackedKernel] = {
    "fp32": (_pack_fp32, _fp32_linear),
    "fp16": (_pack_fp16, _fp16_linear),
    "int8": (_pack_int8, _int8_linear),
}
"""Per precision: how an (out, in) weight is packed once, and add + x (n, in) @ weight.T from the packed
form, for an `add` of (n, out) or (1, out) or None."""


def _packed_kind(x: torch.Tensor, mode: str) -> Optional[str]:
    """The PACKED kernel that computes a product in `mode`; None for torch's own fp32 kernels."""
    if mode != "fp32":
        if x.device.type != "cpu":
            raise InputError(f"precision {mode} runs on the CPU only; this biLM is on {x.device}: use bf16 there")
        return mode
    packable = x.device.type == "cpu" and x.dtype == torch.float32 and _has_onednn()
    return "fp32" if packable and not torch.is_grad_enabled() else None


def batched_product(x: torch.Tensor, weight: torch.Tensor, precision: str,
                    add: Optional[torch.Tensor] = None) -> torch.Tensor:
    """add + x @ weight for (G, N, K) x (G, K, M) in `precision`."""
    if autocast_products(x):
        product = torch.bmm(x, weight).float()
        return product if add is None else product + add
    mode = product_precision(precision)
    if mode == "bf16":
        product = _bf16_result(torch.bmm(_bf16_round(x), _bf16_weight(weight)))
        return product if add is None else product + add
    kind = _packed_kind(x, mode)
    if kind is None:
        return torch.bmm(x, weight) if add is None else torch.baddbmm(add, x, weight)
    pack, multiply = PACKED[kind]
    packed = _derive(weight, kind, lambda w: [pack(w[g].t()) for g in range(w.shape[0])])
    return torch.stack([multiply(x[g], packed[g], None if add is None else add[g]) for g in range(x.shape[0])])


def linear(x: torch.Tensor, layer: nn.Linear, precision: str) -> torch.Tensor:
    """layer(x) in `precision`; the bias is added in fp32."""
    if autocast_products(x):
        return nn.functional.linear(x, layer.weight).float() + layer.bias
    mode = product_precision(precision)
    if mode == "bf16":
        return _bf16_result(nn.functional.linear(_bf16_round(x), _bf16_weight(layer.weight))) + layer.bias
    kind = _packed_kind(x, mode)
    if kind is None:
        return layer(x)
    pack, multiply = PACKED[kind]
    product = multiply(x.reshape(-1, x.shape[-1]), _derive(layer.weight, kind, pack), layer.bias.unsqueeze(0))
    return product.view(*x.shape[:-1], layer.out_features)


def conv1d(x: torch.Tensor, conv: nn.Conv1d, precision: str) -> torch.Tensor:
    """conv(x) in `precision` (int8 and fp16 keep convolutions fp32); the bias is added in fp32."""
    if autocast_products(x):
        return nn.functional.conv1d(x, conv.weight).float() + conv.bias.unsqueeze(-1)
    if product_precision(precision) != "bf16":
        return conv(x)
    bias = conv.bias.unsqueeze(-1)
    return _bf16_result(nn.functional.conv1d(_bf16_round(x), _bf16_weight(conv.weight))) + bias
