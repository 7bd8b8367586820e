"""Any biLM from what was saved of it: options.json + HDF5 files, an `export` folder, an AllenNLP model
archive, or the config a spaCy pipeline stores. Which kinds there are, and how each is built and loaded,
is kinds.py's table; this module only asks it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import OptionsError, WeightsError
from .interface import ContextualBiLM
from ..atomic import PathLike
from .kinds import KINDS, PAIR, UNNAMED


def bilm_config(bilm: ContextualBiLM) -> Dict[str, Any]:
    """JSON/msgpack-able description from which `bilm_from_config` rebuilds the module (weights apart)."""
    return {"kind": bilm.options.kind, "options": bilm.options.to_dict()}


def bilm_from_config(config: Dict[str, Any], source: str = "biLM config") -> ContextualBiLM:
    """An untrained biLM of the architecture `bilm_config` described."""
    name = config.get("kind", UNNAMED.name)
    if name not in KINDS:
        expected = " or ".join(repr(k) for k in KINDS)
        raise OptionsError(f"{source}: unknown biLM kind {name!r} (expected {expected})")
    kind = KINDS[name]
    return kind.build(kind.options.from_dict(config["options"], source=source))


def load_any_bilm(path: Optional[PathLike] = None, options_file: Optional[PathLike] = None,
                  weight_file: Optional[PathLike] = None) -> ContextualBiLM:
    """A biLM in eval mode from whatever was given: options.json + HDF5 files; a folder holding them
    (as `export` writes); or an AllenNLP model archive (model.tar.gz or its unpacked folder)."""
    if path is not None and (options_file is not None or weight_file is not None):
        raise WeightsError(f"got a model path ({path}) and options/weight files: pass one or the other")
    if path is None:
        if options_file is None or weight_file is None:
            raise WeightsError("pass a model path, or both an options file and a weight file")
        return PAIR.load_files(options_file, weight_file)
    path = Path(path)
    for kind in KINDS.values():
        if kind.holds(path):
            return kind.load(path)
    if not path.exists():
        raise WeightsError(f"model not found: {path}")
    expected = ", or an ".join(kind.saved_form for kind in KINDS.values())
    raise WeightsError(f"{path}: not a biLM (expected a {expected})")
