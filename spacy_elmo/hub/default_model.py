"""The English biLM shipped inside the package (trained by `make default-model`, see its MODEL_CARD.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

from ..errors import WeightsError

DEFAULT_MODEL_DIR = Path(__file__).parent.parent / "models" / "default"
OPTIONS_NAME = "options.json"
WEIGHTS_NAME = "weights.hdf5"


def default_model_files() -> Tuple[Path, Path]:
    """(options.json, weights.hdf5) of the bundled model, or a clear error saying what to pass instead."""
    options, weights = DEFAULT_MODEL_DIR / OPTIONS_NAME, DEFAULT_MODEL_DIR / WEIGHTS_NAME
    if not (options.is_file() and weights.is_file()):
        raise WeightsError(
            f"the default ELMo model is not bundled in this installation ({DEFAULT_MODEL_DIR}); "
            "pass an options file and a weight file (official AllenNLP/bilm-tf files or ones from "
            "`python -m spacy_elmo export`)"
        )
    return options, weights
