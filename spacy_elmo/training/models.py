"""The training model of a run (its biLM kind's language model): new, from a checkpoint, or `--init-from`
an earlier run, an export or a published model."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Dict, Optional, Tuple

from ..bilm.interface import BiLMOptions
from ..bilm.loading import load_any_bilm
from ..errors import InputError
from ..hub import fetch_model, model_names
from .checkpoint import CHECKPOINT, load_checkpoint, run_config
from .config import TrainConfig, architecture_settings, default, flag
from .softmax import SoftmaxLM
from .torch_files import load_state
from .vocab import Vocab


def checkpoint_model(ckpt: Dict[str, Any], config: TrainConfig, source: Path, n_samples: int) -> SoftmaxLM:
    """The training model of a checkpoint's weights, with `config`'s kind and dropout."""
    options = config.kind.bilm.options.from_dict(ckpt["options"], source=str(source))
    model = config.kind.impl.language_model(options, len(ckpt["vocab"]), config.dropout, n_samples)
    load_state(model, ckpt["model"], source)
    return model


def model_from_checkpoint(path: Path) -> Tuple[SoftmaxLM, Vocab, TrainConfig]:
    """A run's model (eval mode, full softmax), vocabulary and settings, from its directory or checkpoint file."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    config = run_config(ckpt, path if path.is_dir() else path.parent)
    model = checkpoint_model(ckpt, config, path, n_samples=0)
    return model.eval(), Vocab(ckpt["vocab"], source=str(path)), config


def init_source(init_from: str) -> Path:
    """A run directory, checkpoint or export, or else a published model's name (`python -m spacy_elmo
    models`): its cached folder (an LSTM, export layout) or archive (the transformer), without a softmax,
    which then starts fresh."""
    path = Path(init_from)
    if path.exists() or init_from not in model_names():
        return path
    return fetch_model(init_from)


def initial_model(config: TrainConfig, vocab: Vocab, given: Optional[Collection[str]] = None) -> SoftmaxLM:
    """A fresh model, or the weights of an earlier run/export to continue on new text (same vocabulary).
    With `init_from`, the architecture settings asked for must be the source's (see `refuse_other_sizes`)."""
    kind = config.kind.impl
    if not config.init_from:
        return kind.language_model(config.bilm_options(), len(vocab), config.dropout, config.n_negative_samples)
    source = init_source(config.init_from)
    if source.suffix == ".pt" or (source / CHECKPOINT).is_file():
        ckpt = load_checkpoint(source)
        if ckpt["vocab"] != vocab.tokens:
            raise InputError(f"{source} was trained with a different vocabulary than {config.vocab}; "
                             "continuing needs the same vocabulary")
        _check_kind(ckpt["config"].get("bilm", default("bilm")), config.bilm, source)
        model = checkpoint_model(ckpt, config, source, config.n_negative_samples)
        refuse_other_sizes(model.bilm.options, config, given, source)
        return model
    bilm = load_any_bilm(source)
    _check_kind(bilm.options.kind, config.bilm, source)
    refuse_other_sizes(bilm.options, config, given, source)
    model = kind.language_model(bilm.options, len(vocab), config.dropout, config.n_negative_samples)
    model.bilm.load_state_dict(bilm.state_dict())
    kind.continue_softmax(model, source, vocab)
    return model


def _check_kind(found: str, wanted: str, source: Path) -> None:
    if found != wanted:
        raise InputError(f"--init-from {source} holds a {found} biLM, but this run trains a {wanted} biLM (--bilm); "
                         f"pass --bilm {found} or start from a {wanted} model")


def refuse_other_sizes(options: BiLMOptions, config: TrainConfig, given: Optional[Collection[str]],
                       source: Path) -> None:
    """`--init-from` brings its biLM's sizes: a size setting asked for that differs is refused rather than
    ignored. `given` names the settings asked for (pretrain's flags); None: those not at their defaults."""
    theirs = architecture_settings(options)
    if given is None:
        given = [name for name in theirs if getattr(config, name) != config.kind.defaults.get(name, default(name))]
    wrong = [f"{flag(name)} {_shown(getattr(config, name))} (it has {_shown(theirs[name])})"
             for name in given if name in theirs and getattr(config, name) != theirs[name]]
    if wrong:
        raise InputError(f"--init-from {source} brings its own biLM, whose sizes differ from {', '.join(wrong)}; "
                         "drop those flags to continue it, or train a new biLM of these sizes without --init-from")


def _shown(value: Any) -> str:
    """A setting as its flag takes it (filters as width:count pairs)."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{w}:{n}" for w, n in value)
    return str(value)
