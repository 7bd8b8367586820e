"""ELMo (Peters et al. 2018) for spaCy: a pure-PyTorch biLM and the pipeline pieces built on it."""
from .bilm.archive import load_archive, write_archive
from .bilm.char_ids import CharBatch, batch_to_ids, token_to_ids
from .bilm.embedder import Embedder
from .bilm.interface import ContextualBiLM, load_any_bilm
from .bilm.lstm_bilm import BiLM
from .bilm.options import ElmoOptions
from .bilm.scalar_mix import ScalarMix
from .bilm.transformer_bilm import TransformerBiLM, TransformerOptions
from .bilm.weights import load_bilm, read_weights, save_bilm, write_weights
from .errors import ElmoError, InputError, OptionsError, WeightsError

__version__ = "0.1.0"


def __getattr__(name: str):
    """`spacy_elmo.restore_hooks` without importing spaCy for users of the plain biLM."""
    if name == "restore_hooks":
        from .pipeline.hooks import restore_hooks

        return restore_hooks
    raise AttributeError(f"module 'spacy_elmo' has no attribute '{name}'")
