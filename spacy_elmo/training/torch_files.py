"""Reading what training saved with torch (checkpoints, softmax.pt), with errors that name the file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn

from ..errors import InputError


def torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch reports damage as RuntimeError, EOFError, UnpicklingError, zipfile errors
        raise InputError(f"{path}: the file is truncated or corrupt ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); restore it from a copy or start a new run") from None


def load_state(module: nn.Module, state: Dict[str, Any], source: Path) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as err:
        raise InputError(f"{source}: the checkpoint's weights do not fit its options ({str(err).splitlines()[0]}); "
                         "the file is damaged or not from this version of spacy-elmo") from None
