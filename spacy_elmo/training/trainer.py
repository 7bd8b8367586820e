"""biLM pretraining the bilm-tf way (elmo-spec §8), in one readable loop.

`train(TrainConfig(...))` runs on one process, or under `torchrun` with DistributedDataParallel
(gloo on CPU, nccl on CUDA), each rank reading its own shards. The run directory holds
`checkpoint.pt` (everything needed to continue the run exactly), `log.jsonl`, `loss.png`,
`train_options.json` (bilm-tf's training layout) and `vocab.txt`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..bilm.archive import ALLENNLP_HEADS
from ..bilm.char_ids import token_to_ids
from ..bilm.interface import load_any_bilm
from ..bilm.lstm import LstmState
from ..bilm.lstm_bilm import BiLM
from ..bilm.options import ElmoOptions
from ..bilm.precision import native_bf16
from ..bilm.transformer_bilm import TransformerOptions
from ..atomic import AtomicOutput, Interrupted, atomic_write_text, check_target, refuse_inputs
from ..bilm.weights import load_bilm, save_bilm
from ..errors import InputError, OptionsError, OutputError
from .corpus import FORMATS, PackedBatches, SentenceStream, expand_paths
from .softmax import SoftmaxLM
from .transformer_lm import TransformerBatches, TransformerLanguageModel, export_archive
from .vocab import Vocab

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
SMALL_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]]
OPTIMIZERS = ("adagrad", "adam")
BILMS = ("lstm", "transformer")
PRECISIONS = ("fp32", "bf16")
RESUMABLE = ("output", "max_steps", "max_minutes", "checkpoint_every", "checkpoint_minutes", "log_every", "heldout",
             "eval_batch_size", "threads", "progress", "init_from", "precision")
"""Settings a resumed run may change; any other difference from the run's stored settings is refused.
`precision` is one of them: a checkpoint holds the same fp32 weights and optimizer state in either
precision (and no loss-scaler state), so a switch changes only the arithmetic of the steps after it,
which the log records per line."""
PATH_SETTINGS = ("train", "vocab", "heldout", "init_from")


@dataclass
class TrainConfig:
    """Everything a run needs; saved in its checkpoint so `--resume` needs only the run directory."""

    train: List[str]
    vocab: str
    output: str
    fmt: str = "tokens"
    lang: str = "en"
    # architecture (ignored with init_from, which brings its own); n_layers, the char CNN and
    # max_characters_per_token are shared, lstm_dim to use_skip_connections are the LSTM's, input_dim
    # (the char projection and model width), hidden_dim (feed-forward) and n_heads the transformer's
    bilm: str = "lstm"
    lstm_dim: int = 512
    projection_dim: int = 128
    n_layers: int = 2
    filters: List[List[int]] = field(default_factory=lambda: [list(f) for f in SMALL_FILTERS])
    char_embedding_dim: int = 16
    n_highway: int = 1
    cell_clip: Optional[float] = 3.0
    proj_clip: Optional[float] = 3.0
    use_skip_connections: bool = True
    max_characters_per_token: int = 50
    input_dim: int = 256
    hidden_dim: int = 1024
    n_heads: int = 8
    # training (bilm-tf defaults except the batch size)
    dropout: float = 0.1
    batch_size: int = 64
    unroll_steps: int = 20
    n_negative_samples: int = 8192
    optimizer: str = "adagrad"
    learning_rate: float = 0.2
    clip_norm: float = 10.0
    max_steps: int = 0
    max_minutes: float = 0.0
    checkpoint_every: int = 1000
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    heldout: List[str] = field(default_factory=list)
    eval_batch_size: int = 64
    seed: int = 0
    threads: int = 0
    init_from: Optional[str] = None
    softmax_warmup_steps: int = 0
    progress: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("batch_size", "unroll_steps", "n_negative_samples", "checkpoint_every", "log_every",
                     "eval_batch_size"):
            _check_int(name, getattr(self, name), 1)
        for name in ("max_steps", "threads", "seed", "softmax_warmup_steps"):
            _check_int(name, getattr(self, name), 0)
        for name, value in (("learning_rate", self.learning_rate), ("clip_norm", self.clip_norm),
                            ("checkpoint_minutes", self.checkpoint_minutes)):
            if not _finite(value) or value <= 0:
                raise InputError(f"training setting {name} must be a finite number > 0, found {value!r}")
        if not _finite(self.max_minutes) or self.max_minutes < 0:
            raise InputError(f"training setting max_minutes must be a finite number >= 0, found {self.max_minutes!r}")
        if not _finite(self.dropout) or not 0 <= self.dropout < 1:
            raise InputError(f"training setting dropout must be in [0, 1), found {self.dropout!r}")
        if self.bilm not in BILMS:
            raise InputError(f"unknown biLM architecture {self.bilm!r}; expected one of {BILMS}")
        try:  # the architecture, sizes that fit in memory included, before anything is read or allocated
            self.transformer_options() if self.bilm == "transformer" else self.elmo_options()
        except OptionsError as err:
            raise InputError(f"training setting: {err}") from None
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown training precision {self.precision!r}; expected one of {PRECISIONS}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; expected one of {OPTIMIZERS}")
        if self.fmt not in FORMATS:
            raise InputError(f"unknown text format {self.fmt!r}; expected one of {FORMATS}")

    def elmo_options(self) -> ElmoOptions:
        return ElmoOptions(lstm_dim=self.lstm_dim, projection_dim=self.projection_dim, n_layers=self.n_layers,
                           filters=tuple((int(w), int(n)) for w, n in self.filters),
                           char_embedding_dim=self.char_embedding_dim, n_highway=self.n_highway,
                           cell_clip=self.cell_clip, proj_clip=self.proj_clip,
                           use_skip_connections=self.use_skip_connections,
                           max_characters_per_token=self.max_characters_per_token)

    def transformer_options(self) -> TransformerOptions:
        return TransformerOptions(input_dim=self.input_dim, hidden_dim=self.hidden_dim, n_layers=self.n_layers,
                                  filters=tuple((int(w), int(n)) for w, n in self.filters),
                                  char_embedding_dim=self.char_embedding_dim, n_highway=self.n_highway,
                                  n_heads=self.n_heads, max_characters_per_token=self.max_characters_per_token)

    def bilm_options(self):
        """The architecture this config describes, LSTM or transformer."""
        return self.transformer_options() if self.bilm == "transformer" else self.elmo_options()

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TrainConfig":
        data = {k: v for k, v in data.items() if k != "run_paths"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training settings: {unknown}")
        return cls(**data)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"training setting {name} must be an integer >= {low}, found {value!r}")


class LanguageModel(SoftmaxLM):
    """The LSTM biLM plus its softmax: (char ids, token index, targets, state) -> per-direction losses, next state."""

    def __init__(self, options: ElmoOptions, n_classes: int, dropout: float, n_samples: int = 0, seed: int = 0) -> None:
        super().__init__(n_classes, options.projection_dim, dropout, n_samples, seed)
        self.bilm = BiLM(options, dropout)

    def forward(self, char_ids: torch.Tensor, index: torch.Tensor, targets: torch.Tensor,
                state: Optional[LstmState]) -> Tuple[torch.Tensor, LstmState]:
        """index and targets are (2, B, T): row 0 the forward stream, row 1 the backward stream (already reversed)."""
        tokens = self.bilm.char_cnn(char_ids)[index]
        outputs, (cell, hidden) = self.bilm.lstm(tokens, None, state)
        return self.direction_losses(outputs[-1], targets), (cell.detach(), hidden.detach())


def language_model(kind: str, options: Dict[str, Any], n_classes: int, dropout: float, n_samples: int = 0,
                   source: str = "options") -> SoftmaxLM:
    """An untrained training model of the `kind` ("lstm" or "transformer") biLM that `options` describe."""
    if kind == "transformer":
        return TransformerLanguageModel(TransformerOptions.from_dict(options, source=source), n_classes, dropout,
                                        n_samples)
    return LanguageModel(ElmoOptions.from_dict(options, source=source), n_classes, dropout, n_samples)


def encode_batch(directions: Sequence[List[List[str]]], max_chars: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Distinct tokens' char ids (U, L) and the (2, B, T) index into them, so the CNN runs once per distinct token."""
    table: Dict[str, int] = {}
    rows = [[[table.setdefault(t, len(table)) for t in row] for row in rows] for rows in directions]
    char_ids = np.stack([token_to_ids(t, max_chars) for t in table])
    return torch.from_numpy(char_ids), torch.tensor(rows, dtype=torch.long)


def make_optimizer(config: TrainConfig, model: SoftmaxLM) -> torch.optim.Optimizer:
    """Two parameter groups, the biLM's first, so that `set_bilm_learning_rate` can hold the biLM still."""
    bilm = list(model.bilm.parameters())
    ids = {id(p) for p in bilm}
    groups = [{"params": bilm}, {"params": [p for p in model.parameters() if id(p) not in ids]}]
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=config.learning_rate, initial_accumulator_value=1.0)
    return torch.optim.Adam(groups, lr=config.learning_rate)


def set_bilm_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int) -> None:
    """0 for the first `softmax_warmup_steps` steps: a softmax that starts from random weights (after
    --init-from an export) first learns to read the pretrained biLM instead of pulling it towards noise.
    The biLM's optimizer statistics still accumulate meanwhile, so its first real updates are not oversized."""
    optimizer.param_groups[0]["lr"] = 0.0 if step < config.softmax_warmup_steps else config.learning_rate


def _distributed() -> Tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    import torch.distributed as dist

    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return dist.get_rank(), world, torch.device("cuda", local)
    dist.init_process_group("gloo")
    return dist.get_rank(), world, torch.device("cpu")


def _rank_shards(paths: List[Path], rank: int, world: int) -> List[Path]:
    if len(paths) < world:
        raise InputError(f"{world} processes need at least {world} training files (shards), found {len(paths)}; "
                         "split the text with `python -m spacy_elmo prepare --n-shards N`")
    return paths[rank::world]


class LstmBatches:
    """bilm-tf's batches: forward and backward windows from independent streams (training) or the same
    one-pass order (evaluation), as model inputs, tokens per direction and targets per direction."""

    def __init__(self, config: TrainConfig, vocab: Vocab, paths: Sequence[Path], seed: int, training: bool,
                 batch_size: int) -> None:
        pair = []
        for direction in range(2):
            stream = SentenceStream(paths, config.fmt, config.lang, shuffle=training, loop=training,
                                    seed=seed + direction, min_epoch_tokens=batch_size * config.unroll_steps)
            pair.append(PackedBatches(stream, vocab, batch_size, config.unroll_steps, reverse=direction == 1))
        self.fwd, self.bwd = pair
        self.max_chars = config.max_characters_per_token

    def __iter__(self) -> "LstmBatches":
        return self

    def __next__(self) -> Tuple[Tuple[torch.Tensor, ...], int, torch.Tensor]:
        (fwd_rows, fwd_targets), (bwd_rows, bwd_targets) = next(self.fwd), next(self.bwd)
        char_ids, index = encode_batch([fwd_rows, bwd_rows], self.max_chars)
        targets = torch.from_numpy(np.stack([fwd_targets, bwd_targets]))
        return (char_ids, index, targets), fwd_targets.size, torch.tensor([fwd_targets.size, bwd_targets.size])

    def state_dict(self) -> Dict[str, Any]:
        return {"fwd": self.fwd.state_dict(), "bwd": self.bwd.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.fwd.load_state_dict(state["fwd"])
        self.bwd.load_state_dict(state["bwd"])


def _batches(config: TrainConfig, vocab: Vocab, paths: Sequence[Path], seed: int, training: bool, batch_size: int):
    """The batches of the run's architecture: iterators of (model inputs, tokens, targets per direction)."""
    kind = TransformerBatches if config.bilm == "transformer" else LstmBatches
    return kind(config, vocab, paths, seed, training, batch_size)


def forward_precision(config: TrainConfig, device: torch.device) -> torch.autocast:
    """The context of a training forward pass: plain fp32, or bf16 mixed precision under torch.autocast.

    bf16 keeps fp32 master weights: the parameters, their gradients and the optimizer state stay fp32
    (autocast multiplies with bf16 copies it makes once per step), and bilm.precision and the softmax
    keep all but the products fp32: biases and sums, the LSTM cell and hidden state and their
    clipping, layer norms, the logits, their log-sum-exp and the loss. Backward runs outside it;
    autograd differentiates each product in the dtype it ran in and hands fp32 gradients to clipping
    and the optimizer. No GradScaler: loss scaling is for fp16, whose 5 exponent bits flush small
    gradients to zero; bf16 has fp32's 8 exponent bits, so it loses mantissa bits, not range.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")


def _rng_state() -> Dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _save(path: Path, payload: Dict[str, Any]) -> None:
    """Write-then-rename, so an interrupted save never leaves a broken checkpoint."""
    with AtomicOutput(path) as out:
        torch.save(payload, out.path)


CHECKPOINT_KEYS = ("config", "options", "vocab", "model", "optimizer", "step", "tokens", "elapsed", "ranks")


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """A checkpoint's contents; a missing, empty, truncated or foreign file is an error that names it."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise InputError(f"no training checkpoint at {path}; pass a run directory made by `pretrain`")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the checkpoint is empty (0 bytes); restore it from a copy or start a new run")
    ckpt = _torch_load(path)
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise InputError(f"{path}: not a spacy-elmo training checkpoint (missing {', '.join(missing)})")
    return ckpt


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch reports damage as RuntimeError, EOFError, UnpicklingError, zipfile errors
        raise InputError(f"{path}: the file is truncated or corrupt ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); restore it from a copy or start a new run") from None


def _stored_config(config: TrainConfig, run_dir: Path) -> Dict[str, Any]:
    """The settings with absolute paths, plus `run_paths`: the same paths relative to the run directory,
    so that a moved run tree (or a copied run directory) still finds its files on resume."""
    data = asdict(config)
    relative: Dict[str, Any] = {}
    for name in (*PATH_SETTINGS, "output"):
        value = data[name]
        if isinstance(value, list):
            data[name] = [str(Path(v).resolve()) for v in value]
            relative[name] = [os.path.relpath(v, run_dir.resolve()) for v in data[name]]
        elif value:
            data[name] = str(Path(value).resolve())
            relative[name] = os.path.relpath(data[name], run_dir.resolve())
    return {**data, "run_paths": relative}


def _locate(relative: Optional[str], absolute: str, run_dir: Path) -> str:
    """A path relative to the run directory where it is now, else where it was when the run started."""
    if relative is not None and (run_dir / relative).exists():
        return str(run_dir / relative)
    return absolute


def run_config(ckpt: Dict[str, Any], run_dir: Path) -> TrainConfig:
    """The run's settings from its checkpoint, its output and paths resolved for where the run is now."""
    data = dict(ckpt["config"])
    relative = data.pop("run_paths", {})
    for name in PATH_SETTINGS:
        value, where = data.get(name), relative.get(name)
        if isinstance(value, list):
            data[name] = [_locate(w, v, run_dir) for v, w in zip(value, where or [None] * len(value))]
        elif value:
            data[name] = _locate(where, value, run_dir)
    data["output"] = str(run_dir)
    return TrainConfig.from_dict(data)


def resume_differences(stored: TrainConfig, given: TrainConfig) -> List[str]:
    """Settings of `given` that differ from the run's own, except those a resumed run may change."""
    differences = []
    for f in fields(TrainConfig):
        old, new = getattr(stored, f.name), getattr(given, f.name)
        if f.name in RESUMABLE or old == new:
            continue
        if f.name == "train" and _same_files(old, new):
            continue
        if f.name == "vocab" and _same_vocab(old, new):
            continue
        differences.append(f"{f.name}: run {old!r}, given {new!r}")
    return differences


def _same_files(old: List[str], new: List[str]) -> bool:
    try:
        return [p.resolve() for p in expand_paths(old)] == [p.resolve() for p in expand_paths(new)]
    except InputError:
        return False


def _same_vocab(old: str, new: str) -> bool:
    try:
        return Vocab.from_file(old) == Vocab.from_file(new)
    except InputError:
        return False


def read_log(path: Path) -> List[Dict[str, Any]]:
    """The records of a run's log.jsonl. A torn last line (a crash mid-write) is dropped with a warning;
    a damaged line before it is an error naming the line."""
    lines = path.read_text(encoding="utf8", errors="replace").split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number >= len(lines) - 1 and not any(x.strip() for x in lines[number:]):
                logger.warning("%s: ignoring a torn last line (%d characters) left by an interrupted run", path, len(line))
                break
            raise InputError(f"{path}: line {number} is not a JSON record; delete or repair that line") from None
    return records


def _trim_log(path: Path, step: int) -> None:
    """On resume, keep only the records up to the checkpoint's step: later ones will be trained again."""
    if path.is_file():
        kept = [r for r in read_log(path) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _append_log(path: Path, record: Dict[str, Any]) -> None:
    with path.open("a", encoding="utf8") as f:
        f.write(json.dumps(record) + "\n")


def _init_source(init_from: str) -> Path:
    """A run directory, checkpoint or export, or else a published model's name (`python -m spacy_elmo
    models`): its cached folder (an LSTM, export layout) or archive (the transformer), without a softmax,
    which then starts fresh."""
    from ..hub import fetch_model, model_names

    path = Path(init_from)
    if path.exists() or init_from not in model_names():
        return path
    return fetch_model(init_from)


def _initial_model(config: TrainConfig, vocab: Vocab) -> LanguageModel:
    """A fresh model, or the weights of an earlier run/export to continue on new text (same vocabulary)."""
    if not config.init_from:
        return language_model(config.bilm, config.bilm_options().to_dict(), len(vocab), config.dropout,
                              config.n_negative_samples)
    source = _init_source(config.init_from)
    if source.suffix == ".pt" or (source / CHECKPOINT).is_file():
        ckpt = load_checkpoint(source)
        if ckpt["vocab"] != vocab.tokens:
            raise InputError(f"{source} was trained with a different vocabulary than {config.vocab}; "
                             "continuing needs the same vocabulary")
        _check_kind(ckpt["config"].get("bilm", "lstm"), config.bilm, source)
        return _checkpoint_model(ckpt, config, len(vocab), source)
    if config.bilm == "transformer":
        bilm = load_any_bilm(source)
        _check_kind(bilm.options.kind, config.bilm, source)
        model = language_model(config.bilm, bilm.options.to_dict(), len(vocab), config.dropout,
                               config.n_negative_samples)
        model.bilm.load_state_dict(bilm.state_dict())
        logger.warning("%s: the softmax starts from random weights (only the biLM is taken from an archive)", source)
        return model
    bilm = load_bilm(source / "options.json", source / "weights.hdf5")
    model = LanguageModel(bilm.options, len(vocab), config.dropout, config.n_negative_samples)
    model.bilm.load_state_dict(bilm.state_dict())
    if (source / "vocab.txt").is_file() and Vocab.from_file(source / "vocab.txt") != vocab:
        raise InputError(f"{source}/vocab.txt differs from {config.vocab}; continuing needs the same vocabulary")
    if (source / "softmax.pt").is_file():
        _load_state(model.softmax, _torch_load(source / "softmax.pt"), source / "softmax.pt")
    else:
        logger.warning("%s has no softmax.pt: the softmax starts from random weights", source)
    return model


def _checkpoint_model(ckpt: Dict[str, Any], config: TrainConfig, n_classes: int, source: Path) -> SoftmaxLM:
    """The training model of a checkpoint's weights, with this run's dropout and sampling."""
    model = language_model(config.bilm, ckpt["options"], n_classes, config.dropout, config.n_negative_samples,
                           source=str(source))
    _load_state(model, ckpt["model"], source)
    return model


def _check_kind(found: str, wanted: str, source: Path) -> None:
    if found != wanted:
        raise InputError(f"--init-from {source} holds a {found} biLM, but this run trains a {wanted} biLM (--bilm); "
                         f"pass --bilm {found} or start from a {wanted} model")


def _write_train_options(path: Path, options, config: TrainConfig, n_vocab: int) -> None:
    """bilm-tf's training options layout (261 characters, training fields); for a transformer, its
    options with the same training fields."""
    data = options.to_dict()
    if config.bilm == "transformer":
        data["kind"] = options.kind
    else:
        data["char_cnn"]["n_characters"] = 261
    data.update(bidirectional=True, dropout=config.dropout, batch_size=config.batch_size,
                unroll_steps=config.unroll_steps, n_tokens_vocab=n_vocab,
                n_negative_samples_batch=config.n_negative_samples, all_clip_norm_val=config.clip_norm,
                learning_rate=config.learning_rate, optimizer=config.optimizer)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


class _Interrupt:
    """Turns the first Ctrl-C (or SIGTERM) into a request to checkpoint and stop after the current step;
    a second one stops at once, without a checkpoint (the previous one stays intact)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "_Interrupt":
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _prepare_output(config: TrainConfig, resume: bool, overwrite: bool) -> Optional[AtomicOutput]:
    """A new run is built in a temp directory that becomes the run directory at its first checkpoint;
    an existing run is only replaced with `overwrite`, and only if it is a run."""
    out = Path(config.output)
    if resume:
        return None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (out / CHECKPOINT).is_file() and not (out / LOG).is_file():
            raise OutputError(f"output {out} exists and is not a spacy-elmo run directory; choose a new --output")
        if not overwrite:
            raise OutputError(f"output {out} already holds a run; continue it with --resume, replace it with "
                              "--overwrite, or choose a new --output")
    inputs = [*config.train, config.vocab, *config.heldout, *([config.init_from] if config.init_from else [])]
    refuse_inputs(out, inputs, "--output")
    return AtomicOutput(out, is_dir=True, overwrite=True, flag="--output")


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> Dict[str, Any]:
    """Train (or resume) a run; returns the last log record, plus held-out perplexity when `heldout` is set
    and `interrupted` (the signal's name) when SIGINT/SIGTERM stopped it after a checkpoint.

    A new run is built under a temporary name and appears, whole, with the checkpoint of its first step
    (so a run that fails to start leaves nothing); `resume` refuses settings that differ from the
    run's own (see `RESUMABLE`); `overwrite` replaces an existing run.
    """
    rank, world, device = _distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    staging = _prepare_output(config, resume, overwrite) if rank == 0 else None
    try:
        return _train(config, resume, staging, rank, world, device)
    finally:
        if staging is not None:
            staging.discard()
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _resume_state(config: TrainConfig) -> Tuple[Dict[str, Any], Vocab]:
    out = Path(config.output)
    ckpt = load_checkpoint(out)
    stored = run_config(ckpt, out)
    differences = resume_differences(stored, config)
    if differences:
        raise InputError(f"--resume: these settings differ from the run in {out}: {'; '.join(differences)}; "
                         "drop them to continue the run, or start a new run with another --output")
    return ckpt, Vocab(ckpt["vocab"], source=str(out / CHECKPOINT))


def _train(config: TrainConfig, resume: bool, staging: Optional[AtomicOutput], rank: int, world: int,
           device: torch.device) -> Dict[str, Any]:
    from tqdm import tqdm

    out = Path(config.output)
    ckpt, vocab = _resume_state(config) if resume else (None, Vocab.from_file(config.vocab))
    torch.manual_seed(config.seed)
    model = _initial_model(config, vocab) if ckpt is None else _checkpoint_model(ckpt, config, len(vocab), out)
    options = model.bilm.options
    model.sampler = np.random.default_rng([config.seed, rank])
    model.to(device).train()
    optimizer = make_optimizer(config, model)
    shards = _rank_shards(expand_paths(config.train), rank, world)
    batches = _batches(config, vocab, shards, 1000 * config.seed + 2 * rank, True, config.batch_size)
    state: Optional[LstmState] = None
    step, tokens, elapsed = 0, 0, 0.0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        step, tokens, elapsed = ckpt["step"], ckpt["tokens"], ckpt["elapsed"]
        if len(ckpt["ranks"]) != world:
            raise InputError(f"the run in {out} was trained with {len(ckpt['ranks'])} processes, not {world}")
        mine = ckpt["ranks"][rank]
        batches.load_state_dict(mine)
        state = None if mine["state"] is None else tuple(s.to(device) for s in mine["state"])
        model.sampler.bit_generator.state = mine["sampler"]
        _set_rng_state(mine["rng"])
        if rank == 0:
            _trim_log(out / LOG, step)
    ddp = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run_dir = out if staging is None else staging.path
    if rank == 0 and config.precision == "bf16" and not native_bf16(device):
        logger.warning("--precision bf16: this CPU has no bf16 instructions, so torch emulates bf16 products "
                       "(many times slower than fp32); train in fp32 here, or in bf16 on a CPU with AVX512-BF16/AMX "
                       "or a GPU")
    if staging is not None:
        if config.bilm == "transformer" and options.n_heads != ALLENNLP_HEADS:
            logger.warning("n_heads=%d: this run trains, resumes and evaluates, but `export` writes AllenNLP "
                           "archives, whose transformer has %d heads", options.n_heads, ALLENNLP_HEADS)
        _write_train_options(run_dir / "train_options.json", options, config, len(vocab))
        vocab.to_file(run_dir / "vocab.txt")

    def save() -> None:
        nonlocal run_dir
        mine = {**batches.state_dict(), "sampler": model.sampler.bit_generator.state,
                "rng": _rng_state(), "state": None if state is None else tuple(s.cpu() for s in state)}
        ranks = [mine]
        if world > 1:
            ranks = [None] * world
            torch.distributed.all_gather_object(ranks, mine)
        if rank == 0:
            _save(run_dir / CHECKPOINT, {"config": _stored_config(config, out), "options": options.to_dict(), "vocab": vocab.tokens,
                                         "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                                         "tokens": tokens, "elapsed": elapsed, "ranks": ranks})
            plot_log(run_dir / LOG, run_dir / "loss.png")
            if staging is not None and not staging.committed:
                run_dir = staging.commit()

    bar = tqdm(total=config.max_steps or None, initial=step, unit="step", disable=rank != 0 or not config.progress,
               dynamic_ncols=True)
    record: Dict[str, Any] = {}
    window_loss, window_steps, window_tokens, window_start = torch.zeros(2), 0, 0, time.time()
    last_save, session_start, session_elapsed = time.time(), time.time(), elapsed
    with bar, _Interrupt() as interrupt:
        while True:
            inputs, step_tokens, _ = next(batches)
            with forward_precision(config, device):
                losses, state = ddp(*(x.to(device) for x in inputs), state)
            loss = losses.mean()
            optimizer.zero_grad(set_to_none=True)
            (loss * config.unroll_steps).backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            set_bilm_learning_rate(optimizer, config, step)
            optimizer.step()
            if not torch.isfinite(loss):
                raise InputError(f"the training loss became {loss.item()} at step {step + 1}; lower the learning rate")
            step += 1
            step_tokens = _all_ranks_sum(step_tokens, world)
            tokens += step_tokens
            window_tokens += step_tokens
            elapsed = session_elapsed + time.time() - session_start
            window_loss += losses.detach().cpu()
            window_steps += 1
            flags = torch.tensor([
                float(interrupt.requested or (config.max_steps and step >= config.max_steps)
                      or (config.max_minutes and elapsed >= 60 * config.max_minutes)),
                float(step % config.checkpoint_every == 0 or time.time() - last_save >= 60 * config.checkpoint_minutes
                      or (staging is not None and not staging.committed)),
            ])
            if world > 1:
                torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            stop, checkpoint = bool(flags[0]), bool(flags[1])
            if step % config.log_every == 0 or stop:
                mean = window_loss / window_steps
                if world > 1:
                    torch.distributed.all_reduce(mean)
                    mean /= world
                speed = window_tokens / max(time.time() - window_start, 1e-9)
                record = {"step": step, "tokens": tokens, "minutes": round(elapsed / 60, 3), "loss": mean.mean().item(),
                          "ppl": math.exp(mean.mean().item()), "fwd_ppl": math.exp(mean[0].item()),
                          "bwd_ppl": math.exp(mean[1].item()), "tokens_per_s": round(speed, 1),
                          "grad_norm": float(grad_norm), "precision": config.precision}
                if rank == 0:
                    _append_log(run_dir / LOG, record)
                postfix = {"tok/s": f"{speed:.0f}", "loss": f"{record['loss']:.3f}", "ppl": f"{record['ppl']:.1f}"}
                if config.max_minutes:
                    postfix["left"] = f"{max(config.max_minutes - elapsed / 60, 0):.1f}min"
                bar.set_postfix(postfix)
                window_loss, window_steps, window_tokens, window_start = torch.zeros(2), 0, 0, time.time()
            bar.update(1)
            if checkpoint or stop:
                save()
                last_save = time.time()
            if stop:
                break
    if interrupt.requested:
        return {**record, "interrupted": signal.Signals(interrupt.signum).name}
    if config.heldout and rank == 0:
        record["heldout"] = evaluate(model, vocab, config.heldout, config, config.eval_batch_size)
        _append_log(run_dir / LOG, {"step": step, "tokens": tokens, "heldout": record["heldout"]})
    if world > 1:
        torch.distributed.barrier()
    return record


def _all_ranks_sum(count: int, world: int) -> int:
    """A per-process count summed over all processes (transformer batches hold varying numbers of tokens)."""
    if world == 1:
        return count
    total = torch.tensor([count], dtype=torch.float64)
    torch.distributed.all_reduce(total)
    return int(total.item())


def _load_state(module: nn.Module, state: Dict[str, Any], source: Path) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as err:
        raise InputError(f"{source}: the checkpoint's weights do not fit its options ({str(err).splitlines()[0]}); "
                         "the file is damaged or not from this version of spacy-elmo") from None


@torch.no_grad()
def evaluate(model: SoftmaxLM, vocab: Vocab, paths: Sequence[str], config: TrainConfig,
             batch_size: int = 64) -> Dict[str, float]:
    """Held-out perplexity with the full softmax, no dropout: exp of the mean over predicted tokens of
    0.5 * (forward + backward) loss, computed in fp32 whatever precision the run trained in, so that runs
    in either precision are measured alike. The LSTM reads bilm-tf's windows with its state carried (run_test;
    the last partial batch is skipped); a transformer reads every sentence on its own.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    files = expand_paths(paths)
    total, count = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    state: Optional[LstmState] = None
    for inputs, _, targets in _batches(config, vocab, files, 0, False, batch_size):
        losses, state = model(*(x.to(device) for x in inputs), state)
        total += losses.double().cpu() * targets
        count += targets
    model.train(was_training)
    if not count.all():
        raise InputError(f"the held-out text {[str(p) for p in files]} is smaller than one batch of "
                         f"{batch_size} x {config.unroll_steps} tokens; use a smaller batch size")
    mean = total / count
    return {"ppl": math.exp(mean.mean().item()), "fwd_ppl": math.exp(mean[0].item()),
            "bwd_ppl": math.exp(mean[1].item()), "tokens": int(count[0].item())}


def model_from_checkpoint(path: Path) -> Tuple[LanguageModel, Vocab, TrainConfig]:
    path = Path(path)
    ckpt = load_checkpoint(path)
    config = run_config(ckpt, path if path.is_dir() else path.parent)
    model = language_model(config.bilm, ckpt["options"], len(ckpt["vocab"]), config.dropout, source=str(path))
    _load_state(model, ckpt["model"], path)
    return model.eval(), Vocab(ckpt["vocab"], source=str(path)), config


def export(checkpoint: Path, out_dir: Path, with_softmax: bool = False, overwrite: bool = False) -> Path:
    """An LSTM run: options.json (inference layout) + weights.hdf5 (official layout) + vocab.txt; optionally
    softmax.pt, which only continued training needs. A transformer run: an AllenNLP model archive, a
    folder or, when `out_dir` ends in .tar.gz, a file (config.json, weights.th with the softmax,
    vocabulary/). The output appears complete or not at all."""
    check_target(out_dir, is_dir=not str(out_dir).endswith((".tar.gz", ".tgz")), overwrite=overwrite, inputs=[checkpoint])
    model, vocab, config = model_from_checkpoint(checkpoint)
    if isinstance(model, TransformerLanguageModel):
        as_tar = Path(out_dir).name.endswith((".tar.gz", ".tgz"))
        with AtomicOutput(out_dir, is_dir=not as_tar, overwrite=overwrite, inputs=[checkpoint]) as staging:
            export_archive(model, vocab, config, staging.path, as_tar)
        return Path(out_dir)
    bilm = BiLM(replace(model.bilm.options, extra={}))
    bilm.load_state_dict(model.bilm.state_dict())
    with AtomicOutput(out_dir, is_dir=True, overwrite=overwrite, inputs=[checkpoint]) as staging:
        save_bilm(bilm, staging.path / "options.json", staging.path / "weights.hdf5")
        vocab.to_file(staging.path / "vocab.txt")
        if with_softmax:
            torch.save(model.softmax.state_dict(), staging.path / "softmax.pt")
    return Path(out_dir)


def plot_log(log_path: Path, png_path: Path) -> None:
    """Training loss and perplexity against tokens seen."""
    if not log_path.is_file():
        return
    records = [r for r in read_log(log_path) if "loss" in r]
    if not records:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["tokens"] / 1e6 for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(x, [r["loss"] for r in records])
    ax1.set_xlabel("tokens seen (millions)")
    ax1.set_ylabel("training loss (sampled softmax)")
    ax2.plot(x, [r["ppl"] for r in records])
    ax2.set_yscale("log")
    ax2.set_xlabel("tokens seen (millions)")
    ax2.set_ylabel("training perplexity")
    fig.tight_layout()
    with AtomicOutput(png_path) as out:
        fig.savefig(out.path, dpi=80, format="png")
    plt.close(fig)


__all__ = ["TrainConfig", "LanguageModel", "train", "evaluate", "export", "model_from_checkpoint"]
