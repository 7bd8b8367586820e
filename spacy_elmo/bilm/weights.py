"""Read and write the LSTM biLM's official AllenNLP / bilm-tf weight files (options.json + HDF5, elmo-spec §3)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Iterable, Iterator, Tuple

import numpy as np
import torch

from ..atomic import AtomicOutput, PathLike
from ..errors import WeightsError
from .lstm_bilm import LstmBiLM
from .options import LstmOptions

WEIGHTS_DIGEST = "spacy_elmo_weights_sha256"
OPTIONS_DIGEST = "spacy_elmo_options_sha256"
"""Root attributes of an exported weight file; AllenNLP and bilm-tf read datasets by name and ignore them."""


def _lstm_prefix(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


def _official_tensors(bilm: LstmBiLM) -> Iterator[Tuple[str, np.ndarray]]:
    """(dataset name, array) pairs of a biLM in the official layout, TF's (in, out) orientation."""
    cnn = bilm.char_cnn

    def numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to("cpu", torch.float32).numpy()

    yield "char_embed", numpy(cnn.embedding.weight[1:])
    for i, conv in enumerate(cnn.convs):
        yield f"CNN/W_cnn_{i}", numpy(conv.weight.permute(2, 1, 0).unsqueeze(0))
        yield f"CNN/b_cnn_{i}", numpy(conv.bias)
    for k, highway in enumerate(cnn.highways):
        yield f"CNN_high_{k}/W_carry", numpy(highway.carry.weight.t())
        yield f"CNN_high_{k}/b_carry", numpy(highway.carry.bias)
        yield f"CNN_high_{k}/W_transform", numpy(highway.transform.weight.t())
        yield f"CNN_high_{k}/b_transform", numpy(highway.transform.bias)
    if cnn.projection is not None:
        yield "CNN_proj/W_proj", numpy(cnn.projection.weight.t())
        yield "CNN_proj/b_proj", numpy(cnn.projection.bias)
    for layer_index, layer in enumerate(bilm.lstm.layers):
        for d in range(2):
            prefix = _lstm_prefix(d, layer_index)
            yield f"{prefix}/W_0", numpy(torch.cat([layer.w_input[d], layer.w_hidden[d]]))
            yield f"{prefix}/B", numpy(layer.bias[d])
            if layer.w_proj is not None:
                yield f"{prefix}/W_P_0", numpy(layer.w_proj[d])


def _assign(bilm: LstmBiLM, arrays: Dict[str, np.ndarray]) -> None:
    """Copy official-layout arrays (already checked for names and shapes) into the module."""
    cnn = bilm.char_cnn

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arrays[name], dtype=np.float32))

    with torch.no_grad():
        cnn.embedding.weight[0].zero_()
        cnn.embedding.weight[1:] = t("char_embed")
        for i, conv in enumerate(cnn.convs):
            conv.weight.copy_(t(f"CNN/W_cnn_{i}")[0].permute(2, 1, 0))
            conv.bias.copy_(t(f"CNN/b_cnn_{i}"))
        for k, highway in enumerate(cnn.highways):
            highway.carry.weight.copy_(t(f"CNN_high_{k}/W_carry").t())
            highway.carry.bias.copy_(t(f"CNN_high_{k}/b_carry"))
            highway.transform.weight.copy_(t(f"CNN_high_{k}/W_transform").t())
            highway.transform.bias.copy_(t(f"CNN_high_{k}/b_transform"))
        if cnn.projection is not None:
            cnn.projection.weight.copy_(t("CNN_proj/W_proj").t())
            cnn.projection.bias.copy_(t("CNN_proj/b_proj"))
        for layer_index, layer in enumerate(bilm.lstm.layers):
            split = layer.w_input.shape[1]
            for d in range(2):
                prefix = _lstm_prefix(d, layer_index)
                kernel = t(f"{prefix}/W_0")
                layer.w_input[d] = kernel[:split]
                layer.w_hidden[d] = kernel[split:]
                layer.bias[d] = t(f"{prefix}/B")
                if layer.w_proj is not None:
                    layer.w_proj[d] = t(f"{prefix}/W_P_0")


def weights_digest(arrays: Iterable[Tuple[str, np.ndarray]]) -> str:
    """sha256 over every dataset's name, shape and float32 bytes, in name order."""
    digest = hashlib.sha256()
    for name, array in sorted(arrays, key=lambda item: item[0]):
        array = np.ascontiguousarray(array, dtype=np.float32)
        digest.update(f"{name}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def options_digest(options: LstmOptions) -> str:
    """sha256 of the architecture (not of extra keys, which do not change the model)."""
    data = options.to_dict()
    return hashlib.sha256(json.dumps({k: data[k] for k in ("lstm", "char_cnn")}, sort_keys=True).encode()).hexdigest()


def _verify(path: Path, options: LstmOptions, arrays: Dict[str, np.ndarray], attrs: Dict[str, str]) -> None:
    """Check the digests an export stored (files without them, e.g. the published ones, are not checked)."""
    stored = attrs.get(WEIGHTS_DIGEST)
    if stored is not None and stored != weights_digest(arrays.items()):
        raise WeightsError(f"{path}: checksum mismatch: the weights changed after they were written (the file is "
                           "damaged); export or download it again")
    stored = attrs.get(OPTIONS_DIGEST)
    if stored is not None and stored != options_digest(options):
        raise WeightsError(f"{path}: checksum mismatch: these weights were written with different options than the "
                           "options file given; use the options.json exported with them")


def read_weights(bilm: LstmBiLM, weight_file: PathLike) -> None:
    """Load an official HDF5 weight file into `bilm`, checking every dataset name and shape first,
    and the checksums of weights and options when the file carries them."""
    import h5py

    path = Path(weight_file)
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}")
    expected = {name: array.shape for name, array in _official_tensors(bilm)}
    try:
        with h5py.File(path, "r") as f:
            found: Dict[str, Tuple[int, ...]] = {}
            f.visititems(lambda name, obj: found.__setitem__(name, obj.shape) if isinstance(obj, h5py.Dataset) else None)
            _check_layout(path, bilm.options, expected, found)
            arrays = {name: f[name][()] for name in expected}
            attrs = {key: str(f.attrs[key]) for key in (WEIGHTS_DIGEST, OPTIONS_DIGEST) if key in f.attrs}
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise WeightsError(f"{path}: not a readable HDF5 weight file ({err})") from None
    for name, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise WeightsError(f"{path}: dataset '{name}' contains NaN or infinite values")
    _verify(path, bilm.options, arrays, attrs)
    _assign(bilm, arrays)


def _check_layout(path: Path, options: LstmOptions, expected: Dict[str, Tuple[int, ...]],
                  found: Dict[str, Tuple[int, ...]]) -> None:
    if "char_embed" not in found and "embedding" in found:
        raise WeightsError(f"{path}: holds token embeddings (dataset 'embedding'), not biLM weights")
    for name, shape in expected.items():
        if name not in found:
            hint = _missing_hint(name, options)
            raise WeightsError(f"{path}: missing dataset '{name}'{hint}")
        if tuple(found[name]) != tuple(shape):
            raise WeightsError(
                f"{path}: dataset '{name}' has shape {tuple(found[name])}, expected {tuple(shape)} from the options"
            )
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise WeightsError(
            f"{path}: datasets {unexpected} are not in a model with these options "
            f"(n_layers={options.n_layers}, n_highway={options.n_highway}, {len(options.filters)} filters, "
            f"lstm.dim={options.lstm_dim}, projection_dim={options.projection_dim}): options and weights disagree"
        )


def _missing_hint(name: str, options: LstmOptions) -> str:
    if name.startswith("CNN_high_"):
        return f" (options say n_highway={options.n_highway})"
    if name.startswith("CNN/"):
        return f" (options list {len(options.filters)} filters)"
    if name.startswith("RNN_"):
        return f" (options say n_layers={options.n_layers})"
    return ""


def write_weights(bilm: LstmBiLM, weight_file: PathLike) -> None:
    """Write the biLM in the official layout, loadable by AllenNLP and bilm-tf unchanged, plus checksums
    of the weights and options as root attributes. Written whole or not at all; HDF5 writes through a
    Python file object, so a full disk is an OSError rather than a crash inside HDF5."""
    import h5py

    arrays = list(_official_tensors(bilm))
    with AtomicOutput(weight_file, flag="weight file") as out, open(out.path, "w+b") as handle:
        with h5py.File(handle, "w") as f:
            for name, array in arrays:
                f.create_dataset(name, data=array)
            f.attrs[WEIGHTS_DIGEST] = weights_digest(arrays)
            f.attrs[OPTIONS_DIGEST] = options_digest(bilm.options)


def load_lstm_bilm(options_file: PathLike, weight_file: PathLike) -> LstmBiLM:
    """An LSTM biLM in eval mode from official options.json and HDF5 weight files."""
    bilm = LstmBiLM(LstmOptions.from_file(options_file))
    read_weights(bilm, weight_file)
    return bilm.eval()


def save_lstm_bilm(bilm: LstmBiLM, options_file: PathLike, weight_file: PathLike) -> None:
    bilm.options.to_file(options_file)
    write_weights(bilm, weight_file)

"""Their names before the transformer biLM existed."""
