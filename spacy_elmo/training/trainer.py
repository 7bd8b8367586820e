"""biLM pretraining the bilm-tf way (elmo-spec §8), in one readable loop, and held-out evaluation.

`train(TrainConfig(...))` runs on one process, or under `torchrun` with DistributedDataParallel
(gloo on CPU, nccl on CUDA), each rank reading its own shards; what differs between biLM kinds
comes from the run's kind (kinds.py), what a run directory holds from checkpoint.py.
"""
from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import distributed
from ..atomic import AtomicOutput, special_kind
from ..bilm.precision import native_bf16
from ..errors import InputError
from ..signals import StopRequest, stop_requests
from .checkpoint import (CHECKPOINT, LOG, TRAIN_OPTIONS, append_log, check_train_options, load_checkpoint,
                         prepare_output, rng_state, run_config, save_checkpoint, set_rng_state, trim_log,
                         write_train_options)
from .config import TrainConfig, architecture_settings, check_resume
from .corpus import expand_paths, sample_sentences
from .models import checkpoint_model, initial_model
from .softmax import SoftmaxLM
from .vocab import Vocab

logger = logging.getLogger(__name__)


MAX_LOSS = 700.0
"""A mean loss above this (nats per token: probability below 1e-304 for the targets, a perplexity beyond
a float) is divergence, like inf and NaN; the run stops with an error rather than train on."""


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


def forward_precision(config: TrainConfig, device: torch.device) -> torch.autocast:
    """The context of a training forward pass: plain fp32, or bf16 mixed precision under torch.autocast.

    bf16 keeps fp32 master weights: the parameters, their gradients and the optimizer state stay fp32
    (autocast multiplies with bf16 copies it makes once per step), and bilm.precision and the softmax
    keep what is not a product in fp32: the LSTM cell and hidden state, biases and running sums,
    clipping, layer norms, the logits, their log-sum-exp and the loss. Backward runs outside it;
    autograd differentiates each product in the dtype it ran in and hands fp32 gradients to clipping
    and the optimizer. No GradScaler: loss scaling is for fp16, whose 5 exponent bits flush small
    gradients to zero; bf16 has fp32's 8 exponent bits, so it loses mantissa bits, not range.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")


def rank_shards(paths: List[Path], rank: int, world: int) -> List[Path]:
    for path in paths:
        if special_kind(path):
            raise InputError(f"the training text {path} is {special_kind(path)}, which can be read only once, but "
                             "training reads its text again every epoch; save it to a file first (e.g. with `prepare`)")
    if len(paths) < world:
        raise InputError(f"{world} processes need at least {world} training files (shards), found {len(paths)}; "
                         "split the text with `python -m spacy_elmo prepare --n-shards N`")
    return paths[rank::world]


MAX_UNKNOWN = 0.5
"""A training text with more of its tokens outside the vocabulary (in a sample) gets a warning."""


def _warn_unknown(vocab: Vocab, shard: Path, config: TrainConfig) -> None:
    """Most of the targets <UNK>: the vocabulary is likely another text's (or the wrong --format)."""
    rate, n_tokens = vocab.unknown_rate(sample_sentences(shard, config.fmt, config.lang))
    if rate > MAX_UNKNOWN:
        logger.warning("%.0f%% of the %d tokens sampled from %s are not in the vocabulary %s, so the softmax learns "
                       "them as <UNK>; check that --vocab was built from this text (`vocab`) and --format is right",
                       100 * rate, n_tokens, shard, config.vocab)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False,
          given: Optional[Collection[str]] = None) -> Dict[str, Any]:
    """Train (or resume) a run; returns the last log record, plus held-out perplexity when `heldout` is set
    and `interrupted` (the signal's name) when SIGINT/SIGTERM stopped it after a checkpoint.

    A new run is built under a temporary name and appears, whole, with the checkpoint of its first step
    (so a run that fails to start leaves nothing); `resume` refuses settings that differ from the
    run's own (see `RESUMABLE`); `overwrite` replaces an existing run. With `init_from`, the architecture
    settings named in `given` (by default: those not at their defaults) must be the source's.
    """
    rank, world = distributed.world()
    device = distributed.local_device(world)
    if config.threads:
        torch.set_num_threads(config.threads)
    with distributed.process_group(world, device):
        staging = prepare_output(config, resume, overwrite) if rank == 0 else None
        try:
            return _Run(config, resume, staging, rank, world, device, given).train()
        finally:
            if staging is not None:
                staging.discard()


def _resume_state(config: TrainConfig) -> Tuple[Dict[str, Any], Vocab]:
    out = Path(config.output)
    ckpt = load_checkpoint(out)
    check_resume(run_config(ckpt, out), vars(config), out)
    check_train_options(ckpt, out, config)
    return ckpt, Vocab(ckpt["vocab"], source=str(out / CHECKPOINT))


class _Run:
    """One process's share of a run: the model, optimizer, batches and carried state, and the counters
    a checkpoint saves; rank 0 writes the run directory (the staging one until the first checkpoint)."""

    def __init__(self, config: TrainConfig, resume: bool, staging: Optional[AtomicOutput], rank: int, world: int,
                 device: torch.device, given: Optional[Collection[str]] = None) -> None:
        self.staging, self.rank, self.world, self.device = staging, rank, world, device
        out = Path(config.output)
        ckpt, self.vocab = _resume_state(config) if resume else (None, Vocab.from_file(config.vocab))
        torch.manual_seed(config.seed)
        self.model = (initial_model(config, self.vocab, given) if ckpt is None
                      else checkpoint_model(ckpt, config, out, config.n_negative_samples))
        if config.init_from and ckpt is None:  # the checkpoint records the sizes the weights have
            config = replace(config, **architecture_settings(self.model.bilm.options))
        self.config = config
        self.model.sampler = np.random.default_rng([config.seed, rank])
        self.model.to(device).train()
        self.optimizer = make_optimizer(config, self.model)
        shards = rank_shards(expand_paths(config.train), rank, world)
        if rank == 0 and ckpt is None:
            _warn_unknown(self.vocab, shards[0], config)
        self.batches = config.kind.impl.batches(config, self.vocab, shards, 1000 * config.seed + 2 * rank, True,
                                           config.batch_size)
        self.state: Any = None
        self.step, self.tokens, self.elapsed = 0, 0, 0.0
        if ckpt is not None:
            self._restore(ckpt, out)
        self.run_dir = out if staging is None else staging.path
        if staging is not None:
            self._start_run_directory()

    def _restore(self, ckpt: Dict[str, Any], out: Path) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.tokens, self.elapsed = ckpt["step"], ckpt["tokens"], ckpt["elapsed"]
        if len(ckpt["ranks"]) != self.world:
            raise InputError(f"the run in {out} was trained with {len(ckpt['ranks'])} processes, not {self.world}")
        mine = ckpt["ranks"][self.rank]
        self.batches.load_state_dict(mine)
        self.state = None if mine["state"] is None else tuple(s.to(self.device) for s in mine["state"])
        self.model.sampler.bit_generator.state = mine["sampler"]
        set_rng_state(mine["rng"])
        if self.rank == 0:
            trim_log(out / LOG, self.step)

    def _start_run_directory(self) -> None:
        options = self.model.bilm.options
        warning = self.config.kind.impl.export_warning(options)
        if warning:
            logger.warning("%s", warning)
        write_train_options(self.run_dir / TRAIN_OPTIONS, options, self.config, len(self.vocab))
        self.vocab.to_file(self.run_dir / "vocab.txt")

    def save(self) -> None:
        mine = {**self.batches.state_dict(), "sampler": self.model.sampler.bit_generator.state, "rng": rng_state(),
                "state": None if self.state is None else tuple(s.cpu() for s in self.state)}
        ranks = distributed.all_gather(mine, self.world)
        if self.rank != 0:
            return
        save_checkpoint(self.run_dir, self.config, options=self.model.bilm.options.to_dict(), vocab=self.vocab.tokens,
                        model=self.model.state_dict(), optimizer=self.optimizer.state_dict(), step=self.step,
                        tokens=self.tokens, elapsed=self.elapsed, ranks=ranks)
        if self.staging is not None and not self.staging.committed:
            self.run_dir = self.staging.commit()

    def train(self) -> Dict[str, Any]:
        config = self.config
        if self.rank == 0 and config.precision == "bf16" and not native_bf16(self.device):
            logger.warning("--precision bf16: this CPU has no bf16 instructions, so torch emulates bf16 products "
                           "(many times slower than fp32); train in fp32 here, or in bf16 on a CPU with "
                           "AVX512-BF16/AMX or a GPU")
        ddp = self.model
        if self.world > 1:
            ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        bar = tqdm(total=config.max_steps or None, initial=self.step, unit="step",
                   disable=self.rank != 0 or not config.progress, dynamic_ncols=True)
        window = _Window()
        last_save, session_start, session_elapsed = time.time(), time.time(), self.elapsed
        record: Dict[str, Any] = {}
        with bar, stop_requests() as interrupt:
            while True:
                losses, grad_norm, step_tokens = self._step(ddp)
                self.elapsed = session_elapsed + time.time() - session_start
                window.add(losses, step_tokens)
                stop, checkpoint = self._decide(interrupt, last_save)
                if self.step % config.log_every == 0 or stop:
                    record = self._log(window, grad_norm, bar)
                    window = _Window()
                bar.update(1)
                if checkpoint or stop:
                    self.save()
                    last_save = time.time()
                if stop:
                    break
        if interrupt.requested:
            return {**record, "interrupted": signal.Signals(interrupt.signum).name}
        if config.heldout and self.rank == 0:
            record["heldout"] = evaluate(self.model, self.vocab, config.heldout, config, config.eval_batch_size)
            append_log(self.run_dir / LOG, {"step": self.step, "tokens": self.tokens, "heldout": record["heldout"]})
        distributed.barrier(self.world)
        return record

    def _step(self, ddp: nn.Module) -> Tuple[torch.Tensor, torch.Tensor, int]:
        """One optimizer step; (per-direction losses, gradient norm, tokens of all ranks)."""
        config = self.config
        inputs, step_tokens, _ = next(self.batches)
        with forward_precision(config, self.device):
            losses, self.state = ddp(*(x.to(self.device) for x in inputs), self.state)
        loss = losses.mean()
        self.optimizer.zero_grad(set_to_none=True)
        (loss * config.unroll_steps).backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_norm)
        set_bilm_learning_rate(self.optimizer, config, self.step)
        self.optimizer.step()
        value = loss.item()
        diverged = not value <= MAX_LOSS  # NaN included
        totals = distributed.all_sum(torch.tensor([step_tokens, diverged], dtype=torch.float64), self.world)
        if totals[1]:
            became = f"{value:g}" if diverged else "inf or NaN in another process"
            raise InputError(f"the training loss became {became} at step {self.step + 1}: the run diverged; start "
                             f"again with a lower --learning-rate (now {config.learning_rate:g})")
        self.step += 1
        step_tokens = int(totals[0].item())
        self.tokens += step_tokens
        return losses.detach().cpu(), grad_norm, step_tokens

    def _decide(self, interrupt: StopRequest, last_save: float) -> Tuple[bool, bool]:
        """(stop, checkpoint), the same on every rank."""
        config = self.config
        flags = torch.tensor([
            float(interrupt.requested or (config.max_steps and self.step >= config.max_steps)
                  or (config.max_minutes and self.elapsed >= 60 * config.max_minutes)),
            float(self.step % config.checkpoint_every == 0 or time.time() - last_save >= 60 * config.checkpoint_minutes
                  or (self.staging is not None and not self.staging.committed)),
        ])
        distributed.all_max(flags, self.world)
        return bool(flags[0]), bool(flags[1])

    def _log(self, window: "_Window", grad_norm: torch.Tensor, bar: Any) -> Dict[str, Any]:
        config = self.config
        mean = distributed.all_sum(window.loss / window.steps, self.world) / self.world
        speed = window.tokens / max(time.time() - window.start, 1e-9)
        record = {"step": self.step, "tokens": self.tokens, "minutes": round(self.elapsed / 60, 3),
                  "loss": mean.mean().item(), **perplexities(mean), "tokens_per_s": round(speed, 1),
                  "grad_norm": float(grad_norm), "precision": config.precision}
        if self.rank == 0:
            append_log(self.run_dir / LOG, record)
        postfix = {"tok/s": f"{speed:.0f}", "loss": f"{record['loss']:.3f}", "ppl": f"{record['ppl']:.1f}"}
        if config.max_minutes:
            postfix["left"] = f"{max(config.max_minutes - self.elapsed / 60, 0):.1f}min"
        bar.set_postfix(postfix)
        return record


class _Window:
    """The losses and tokens of the steps since the last log line."""

    def __init__(self) -> None:
        self.loss, self.steps, self.tokens, self.start = torch.zeros(2), 0, 0, time.time()

    def add(self, losses: torch.Tensor, tokens: int) -> None:
        self.loss += losses
        self.steps += 1
        self.tokens += tokens


@torch.no_grad()
def evaluate(model: SoftmaxLM, vocab: Vocab, paths: Sequence[str], config: TrainConfig,
             batch_size: int) -> Dict[str, float]:
    """Held-out perplexity with the full softmax, no dropout: exp of the mean over predicted tokens of
    0.5 * (forward + backward) loss, computed in fp32 whatever precision the run trained in, so that runs
    in either precision are measured alike. The LSTM reads bilm-tf's windows with its state carried (run_test),
    the last ones padded, so that every held-out token is scored (bilm-tf skipped the last partial batch); a
    transformer reads every sentence on its own.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    files = expand_paths(paths)
    total, count = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    state: Any = None
    for inputs, _, targets in config.kind.impl.batches(config, vocab, files, 0, False, batch_size):
        losses, state = model(*(x.to(device) for x in inputs), state)
        total += losses.double().cpu() * targets
        count += targets
    model.train(was_training)
    if not count.all():
        raise InputError(f"the held-out text {[str(p) for p in files]} has no tokens to score")
    mean = total / count
    return {**perplexities(mean), "tokens": int(count[0].item())}


def perplexities(mean: torch.Tensor) -> Dict[str, float]:
    """exp of the mean loss of both directions and of each; inf where it exceeds a float (a loss above ~709)."""
    return {name: math.exp(loss) if loss < 709 else math.inf
            for name, loss in (("ppl", mean.mean().item()), ("fwd_ppl", mean[0].item()), ("bwd_ppl", mean[1].item()))}

