"""ELMo (Peters et al. 2018) for spaCy: a pure-PyTorch biLM and the pipeline pieces built on it."""
from importlib import import_module
from typing import Any, List

from .errors import ElmoError, InputError, OptionsError, WeightsError

__version__ = "0.1.0"

# Each public name is imported from its module on first use, so that the command line (`--help` in
# particular) does not wait for torch, and users of the plain biLM never import spaCy.
_PUBLIC = {
    "load_archive": ".bilm.archive", "write_archive": ".bilm.archive",
    "CharBatch": ".bilm.char_ids", "batch_to_ids": ".bilm.char_ids", "token_to_ids": ".bilm.char_ids",
    "Embedder": ".bilm.embedder",
    "ContextualBiLM": ".bilm.interface", "load_any_bilm": ".bilm.interface",
    "BiLM": ".bilm.lstm_bilm",
    "ElmoOptions": ".bilm.options",
    "ScalarMix": ".bilm.scalar_mix",
    "TransformerBiLM": ".bilm.transformer_bilm", "TransformerOptions": ".bilm.transformer_bilm",
    "load_bilm": ".bilm.weights", "read_weights": ".bilm.weights", "save_bilm": ".bilm.weights",
    "write_weights": ".bilm.weights",
    "restore_hooks": ".pipeline.hooks",
}
__all__ = ["ElmoError", "InputError", "OptionsError", "WeightsError", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'spacy_elmo' has no attribute '{name}'")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted({*globals(), *_PUBLIC})
