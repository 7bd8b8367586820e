"""A run directory: `checkpoint.pt` (everything needed to continue the run exactly), `log.jsonl`,
`loss.png`, `train_options.json` (bilm-tf's training layout) and `vocab.txt`.

A new run is built under a temporary name and appears, whole, with its first checkpoint. Paths are
stored absolute and relative to the run, so a moved run tree (or a copied run) still finds its files.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..atomic import AtomicOutput, atomic_write_text, refuse_inputs
from ..bilm.interface import BiLMOptions
from ..bilm.kinds import UNNAMED
from ..errors import DISK_FULL, InputError, OutputError
from .config import PATH_SETTINGS, TrainConfig, default, other_kinds_settings
from .kinds import KINDS
from .torch_files import torch_load

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
TRAIN_OPTIONS = "train_options.json"
PLOT = "loss.png"
TORCH_WRITE_FAILED = re.compile(r"inline_container|PytorchStreamWriter|file write failed")
"""What torch's RuntimeError says when writing a checkpoint failed (a full disk among the causes)."""
CHECKPOINT_KEYS = ("config", "options", "vocab", "model", "optimizer", "step", "tokens", "elapsed", "ranks")


def prepare_output(config: TrainConfig, resume: bool, overwrite: bool) -> Optional[AtomicOutput]:
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


def rng_state() -> Dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(run_dir: Path, config: TrainConfig, **contents: Any) -> None:
    """checkpoint.pt, written then renamed so that an interrupted or failed save never leaves a broken one,
    and the plot of the log so far. `contents` are the CHECKPOINT_KEYS other than the config."""
    path = run_dir / CHECKPOINT
    try:
        with AtomicOutput(path) as out:
            torch.save({"config": _stored_config(config, Path(config.output)), **contents}, out.path)
    except (OSError, RuntimeError) as err:
        # torch reports a failed write of its zip container as a RuntimeError without the errno
        if isinstance(err, OSError) and err.errno not in DISK_FULL or \
                isinstance(err, RuntimeError) and not TORCH_WRITE_FAILED.search(str(err)):
            raise
        cause = err.strerror if isinstance(err, OSError) else "the write failed"
        raise OutputError(f"no space left on device: cannot write the checkpoint {Path(config.output) / CHECKPOINT} "
                          f"({cause}: the disk is full or a file size limit was hit); the run's previous checkpoint, "
                          "if any, is intact: free some space and continue with --resume") from None
    plot_log(run_dir / LOG, run_dir / PLOT)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """A checkpoint's contents; a missing, empty, truncated or foreign file is an error that names it."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise InputError(f"no training checkpoint at {path}; pass a run directory made by `pretrain`")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the checkpoint is empty (0 bytes); restore it from a copy or start a new run")
    ckpt = torch_load(path)
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise InputError(f"{path}: not a spacy-elmo training checkpoint (missing {', '.join(missing)})")
    return ckpt


def _stored_config(config: TrainConfig, run_dir: Path) -> Dict[str, Any]:
    """The settings with absolute paths, plus `run_paths`: the same paths relative to the run directory."""
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
    """The run's settings from its checkpoint, its output and paths resolved for where the run is now.

    Runs made before each biLM kind owned its settings stored every kind's, at their defaults: the
    other kinds' are dropped."""
    data = dict(ckpt["config"])
    relative = data.pop("run_paths", {})
    for name in PATH_SETTINGS:
        value, where = data.get(name), relative.get(name)
        if isinstance(value, list):
            data[name] = [_locate(w, v, run_dir) for v, w in zip(value, where or [None] * len(value))]
        elif value:
            data[name] = _locate(where, value, run_dir)
    data["output"] = str(run_dir)
    kind = KINDS.get(data.get("bilm", default("bilm")))
    others = other_kinds_settings(kind) if kind is not None else []
    return TrainConfig.from_dict({k: v for k, v in data.items() if k not in others})


def check_train_options(ckpt: Dict[str, Any], run_dir: Path, config: TrainConfig) -> None:
    """A run's checkpoint against the train_options.json written when the run started: a checkpoint of
    another biLM (or vocabulary size) put in the run is refused, not trained under the run's sizes. The
    checkpoint's tensors are checked against its own options when the model is built (load_state)."""
    path = run_dir / TRAIN_OPTIONS
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the run's options ({err}); restore it from a copy") from None
    options = config.kind.bilm.options.from_dict(ckpt["options"], source=str(run_dir / CHECKPOINT))
    found = config.kind.impl.train_options(options)
    found["n_tokens_vocab"] = len(ckpt["vocab"])
    stored = dict(_flat(stored)) if isinstance(stored, dict) else {}
    stored.setdefault("kind", UNNAMED.name)  # older LSTM runs wrote no kind
    wrong = [f"{key} {value!r} in {CHECKPOINT}, {stored.get(key)!r} in {TRAIN_OPTIONS}"
             for key, value in _flat(found) if stored.get(key) != value]
    if wrong:
        raise InputError(f"--resume: the checkpoint in {run_dir} holds another biLM than the run's {TRAIN_OPTIONS} "
                         f"describes ({'; '.join(wrong)}); put back the run's own {CHECKPOINT}, or start a new run "
                         "from this one with --init-from")


def _flat(data: Dict[str, Any], prefix: str = "") -> Iterator[Tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def write_train_options(path: Path, options: BiLMOptions, config: TrainConfig, n_vocab: int) -> None:
    """The biLM's options with the training fields of bilm-tf's train_options.json."""
    data = config.kind.impl.train_options(options)
    data.update(bidirectional=True, dropout=config.dropout, batch_size=config.batch_size,
                unroll_steps=config.unroll_steps, n_tokens_vocab=n_vocab,
                n_negative_samples_batch=config.n_negative_samples, all_clip_norm_val=config.clip_norm,
                learning_rate=config.learning_rate, optimizer=config.optimizer)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


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


def trim_log(path: Path, step: int) -> None:
    """On resume, keep only the records up to the checkpoint's step: later ones will be trained again."""
    if path.is_file():
        kept = [r for r in read_log(path) if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def append_log(path: Path, record: Dict[str, Any]) -> None:
    with path.open("a", encoding="utf8") as f:
        f.write(json.dumps(record) + "\n")


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
