"""ELMo (Peters et al. 2018) for spaCy: a pure-PyTorch biLM and the pipeline pieces built on it."""
from importlib import import_module
from typing import Any, List

from .atomic import protect
from .errors import ElmoError, InputError, OptionsError, WeightsError
from .hub.cache import protected_paths

protect(protected_paths)  # no output of any command may land in a cached or bundled model

__version__ = "0.1.0"

# Each public name is imported from its module on first use, so that the command line (`--help` in
# particular) does not wait for torch, and users of the plain biLM never import spaCy.
#
# Generic names belong to the interface of both biLM kinds (ContextualBiLM, BiLMOptions, load_any_bilm);
# each kind's own names say its kind (LstmBiLM, LstmOptions, load_lstm_bilm, save_lstm_bilm;
# TransformerBiLM, TransformerOptions).
_PUBLIC = {
    "load_archive": ".bilm.archive", "write_archive": ".bilm.archive",
    "CharBatch": ".bilm.char_ids", "batch_to_ids": ".bilm.char_ids", "token_to_ids": ".bilm.char_ids",
    "Embedder": ".embedder",
    "BiLMOptions": ".bilm.interface", "ContextualBiLM": ".bilm.interface",
    "bilm_config": ".bilm.loading", "bilm_from_config": ".bilm.loading", "load_any_bilm": ".bilm.loading",
    "LstmBiLM": ".bilm.lstm_bilm",
    "LstmOptions": ".bilm.options", "TransformerOptions": ".bilm.options",
    "ScalarMix": ".bilm.scalar_mix",
    "TransformerBiLM": ".bilm.transformer_bilm",
    "load_lstm_bilm": ".bilm.weights", "read_weights": ".bilm.weights", "save_lstm_bilm": ".bilm.weights",
    "write_weights": ".bilm.weights",
    "restore_hooks": ".pipeline.hooks",
    "install_patches": ".pipeline.spacy_patches", "uninstall_patches": ".pipeline.spacy_patches",
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
