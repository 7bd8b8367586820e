"""Any biLM from what was saved of it: options.json + HDF5 files, an `export` folder, an AllenNLP model
archive, or the config a spaCy pipeline stores. Each biLM kind is one row of KINDS; nothing else in the
package asks which kind a biLM is in order to build or load it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional, Type, Union

from ..errors import OptionsError, WeightsError
from .archive import is_archive, load_archive
from .archive_config import CONFIG_NAME
from .interface import ContextualBiLM
from .lstm_bilm import LstmBiLM
from .options import LstmOptions, TransformerOptions
from .transformer_bilm import TransformerBiLM
from .weights import load_lstm_bilm

PathLike = Union[str, Path]
OPTIONS_FILE = "options.json"
WEIGHTS_FILE = "weights.hdf5"


class Kind(NamedTuple):
    options: Any
    """Its options class: `from_dict(data, source)` reads what `to_dict` wrote."""
    module: Type[ContextualBiLM]
    """Built as module(options), untrained."""
    holds: Callable[[Path], bool]
    """Whether a path is this kind's saved form."""
    load: Callable[[Path], ContextualBiLM]
    """That saved form, in eval mode."""


def _is_lstm_folder(path: Path) -> bool:
    return path.is_dir() and (path / OPTIONS_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def _load_lstm_folder(path: Path) -> ContextualBiLM:
    return load_lstm_bilm(path / OPTIONS_FILE, path / WEIGHTS_FILE)


def _is_archive(path: Path) -> bool:
    return (path.is_dir() and (path / CONFIG_NAME).is_file()) or (path.is_file() and is_archive(path))


KINDS: Dict[str, Kind] = {
    LstmOptions.kind: Kind(LstmOptions, LstmBiLM, _is_lstm_folder, _load_lstm_folder),
    TransformerOptions.kind: Kind(TransformerOptions, TransformerBiLM, _is_archive, load_archive),
}
UNNAMED_KIND = LstmOptions.kind
"""The kind of a config without one: pipelines saved before the transformer biLM existed."""


def bilm_config(bilm: ContextualBiLM) -> Dict[str, Any]:
    """JSON/msgpack-able description from which `bilm_from_config` rebuilds the module (weights apart)."""
    return {"kind": bilm.options.kind, "options": bilm.options.to_dict()}


def bilm_from_config(config: Dict[str, Any], source: str = "biLM config") -> ContextualBiLM:
    """An untrained biLM of the architecture `bilm_config` described."""
    name = config.get("kind", UNNAMED_KIND)
    if name not in KINDS:
        expected = " or ".join(repr(k) for k in KINDS)
        raise OptionsError(f"{source}: unknown biLM kind {name!r} (expected {expected})")
    kind = KINDS[name]
    return kind.module(kind.options.from_dict(config["options"], source=source))


def load_any_bilm(path: Optional[PathLike] = None, options_file: Optional[PathLike] = None,
                  weight_file: Optional[PathLike] = None) -> ContextualBiLM:
    """A biLM in eval mode from whatever was given: options.json + HDF5 files; a folder holding them
    (as `export` writes); or an AllenNLP model archive (model.tar.gz or its unpacked folder)."""
    if path is not None and (options_file is not None or weight_file is not None):
        raise WeightsError(f"got a model path ({path}) and options/weight files: pass one or the other")
    if path is None:
        if options_file is None or weight_file is None:
            raise WeightsError("pass a model path, or both an options file and a weight file")
        return load_lstm_bilm(options_file, weight_file)
    path = Path(path)
    for kind in KINDS.values():
        if kind.holds(path):
            return kind.load(path)
    if not path.exists():
        raise WeightsError(f"model not found: {path}")
    raise WeightsError(f"{path}: not a biLM (expected a folder with {OPTIONS_FILE} + {WEIGHTS_FILE}, or an "
                       f"AllenNLP model archive: model.tar.gz or a folder with {CONFIG_NAME} and weights.th)")
