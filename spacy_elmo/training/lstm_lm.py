"""Pretraining an LSTM biLM the bilm-tf way (elmo-spec §8): its batches, its loss and its export.

Batches are bilm-tf's packed stateful windows: each direction reads its own sentence stream, every row
of a batch continues its sentence in the next batch, and the LSTM state is carried from one window to
the next, so a window may start mid-sentence without losing the context. The export is the official
layout (options.json, weights.hdf5) that AllenNLP, bilm-tf and `embed` read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..atomic import AtomicOutput
from ..bilm.char_ids import BOS, EOS, N_CHARACTERS, CharBatch
from ..bilm.lstm import LstmState
from ..bilm.lstm_bilm import LstmBiLM
from ..bilm.options import LstmOptions, whole_filters
from ..bilm.weights import save_lstm_bilm
from ..errors import InputError, OutputError
from .bilm_kind import ARCHIVE_SUFFIXES, Batch, BilmKind, Settings
from .corpus import Sentence, SentenceStream
from .softmax import NO_TARGET, SoftmaxLM
from .torch_files import load_state, torch_load
from .vocab import Vocab

logger = logging.getLogger(__name__)


class LstmLanguageModel(SoftmaxLM):
    """The LSTM biLM plus its softmax: (char ids, token index, targets, state) -> per-direction losses, next state."""

    def __init__(self, options: LstmOptions, n_classes: int, dropout: float, n_samples: int = 0, seed: int = 0) -> None:
        super().__init__(n_classes, options.projection_dim, dropout, n_samples, seed)
        self.bilm = LstmBiLM(options, dropout)

    def forward(self, char_ids: torch.Tensor, index: torch.Tensor, targets: torch.Tensor,
                state: Optional[LstmState]) -> Tuple[torch.Tensor, LstmState]:
        """index and targets are (2, B, T): row 0 the forward stream, row 1 the backward stream (already reversed)."""
        tokens = self.bilm.char_cnn(char_ids)[index]
        outputs, (cell, hidden) = self.bilm.lstm(tokens, None, state)
        return self.direction_losses(outputs[-1], targets), (cell.detach(), hidden.detach())


@dataclass
class _Row:
    tokens: Sentence
    ids: np.ndarray
    cursor: int


class PackedBatches:
    """bilm-tf's training batches for one direction: every row is a full window of `unroll_steps`.

    Each row keeps its current sentence ([<S>, w1..wn, </S>], or reversed for the backward LM) and
    continues it in the next batch, so the carried LSTM state of row b belongs to the same text.
    The sentence end is only ever a target. When a (one-pass) stream ends, the rows that have no text
    left are padded, without targets, until every row's last sentence is read: every token is a target.
    """

    def __init__(self, stream: SentenceStream, vocab: Vocab, batch_size: int, unroll_steps: int,
                 reverse: bool = False) -> None:
        self.stream, self.vocab = stream, vocab
        self.batch_size, self.unroll_steps, self.reverse = batch_size, unroll_steps, reverse
        self.rows: List[Optional[_Row]] = [None] * batch_size

    def _next_row(self) -> Optional[_Row]:
        sentence = next(self.stream, None)
        if sentence is None:
            return None
        tokens = [BOS] + sentence + [EOS]
        if self.reverse:
            tokens.reverse()
        return _Row(tokens, self.vocab.ids(tokens), 0)

    def __iter__(self) -> "PackedBatches":
        return self

    def __next__(self) -> Tuple[List[Sentence], np.ndarray]:
        """(B rows of T input tokens, (B, T) target ids)."""
        steps = self.unroll_steps
        inputs: List[Sentence] = []
        targets = np.full((self.batch_size, steps), NO_TARGET, dtype=np.int64)
        for b in range(self.batch_size):
            row_tokens: Sentence = []
            while len(row_tokens) < steps:
                row = self.rows[b]
                if row is None or row.cursor >= len(row.tokens) - 1:
                    row = self.rows[b] = self._next_row()
                if row is None:
                    row_tokens.extend([BOS] * (steps - len(row_tokens)))
                    break
                take = min(steps - len(row_tokens), len(row.tokens) - 1 - row.cursor)
                filled = len(row_tokens)
                row_tokens.extend(row.tokens[row.cursor : row.cursor + take])
                targets[b, filled : filled + take] = row.ids[row.cursor + 1 : row.cursor + 1 + take]
                row.cursor += take
            inputs.append(row_tokens)
        if (targets == NO_TARGET).all():
            raise StopIteration
        return inputs, targets

    def state_dict(self) -> Dict[str, Any]:
        rows = [None if r is None else (r.tokens, r.cursor) for r in self.rows]
        return {"stream": self.stream.state_dict(), "rows": rows}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])
        self.rows = [None if r is None else _Row(list(r[0]), self.vocab.ids(r[0]), r[1]) for r in state["rows"]]


class LstmBatches:
    """The two directions' PackedBatches, from independent streams (training) or the same one-pass
    order (evaluation), as one batch: the char CNN runs once per distinct token of both."""

    def __init__(self, settings: Settings, vocab: Vocab, paths: Sequence[Path], seed: int, training: bool,
                 batch_size: int) -> None:
        pair = []
        for direction in range(2):
            stream = SentenceStream(paths, settings.fmt, settings.lang, shuffle=training, loop=training,
                                    seed=seed + direction, min_epoch_tokens=batch_size * settings.unroll_steps)
            pair.append(PackedBatches(stream, vocab, batch_size, settings.unroll_steps, reverse=direction == 1))
        self.fwd, self.bwd = pair
        self.max_chars = settings.max_characters_per_token

    def __iter__(self) -> "LstmBatches":
        return self

    def __next__(self) -> Batch:
        (fwd_rows, fwd_targets), (bwd_rows, bwd_targets) = next(self.fwd), next(self.bwd)
        chars = CharBatch.from_sentences(fwd_rows + bwd_rows, self.max_chars, boundaries=False)
        index = torch.from_numpy(chars.index).view(2, *fwd_targets.shape)
        targets = torch.from_numpy(np.stack([fwd_targets, bwd_targets]))
        inputs = (torch.from_numpy(chars.unique), index, targets)
        counts = [int((t != NO_TARGET).sum()) for t in (fwd_targets, bwd_targets)]
        return inputs, counts[0], torch.tensor(counts)

    def state_dict(self) -> Dict[str, Any]:
        return {"fwd": self.fwd.state_dict(), "bwd": self.bwd.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.fwd.load_state_dict(state["fwd"])
        self.bwd.load_state_dict(state["bwd"])


class LstmKind(BilmKind):
    language_model = LstmLanguageModel

    def architecture(self, settings: Mapping[str, Any]) -> LstmOptions:
        return LstmOptions(lstm_dim=settings["lstm_dim"], projection_dim=settings["projection_dim"],
                           n_layers=settings["n_layers"], filters=whole_filters(settings["filters"], "filters"),
                           char_embedding_dim=settings["char_embedding_dim"], n_highway=settings["n_highway"],
                           cell_clip=settings["cell_clip"], proj_clip=settings["proj_clip"],
                           use_skip_connections=settings["use_skip_connections"],
                           max_characters_per_token=settings["max_characters_per_token"])

    def batches(self, settings: Settings, vocab: Vocab, paths: Sequence[Path], seed: int, training: bool,
                batch_size: int) -> LstmBatches:
        return LstmBatches(settings, vocab, paths, seed, training, batch_size)

    def train_options(self, options: LstmOptions) -> Dict[str, Any]:
        """bilm-tf's training layout, whose character table has no padding row (261)."""
        data = super().train_options(options)
        data["char_cnn"]["n_characters"] = N_CHARACTERS - 1
        return data

    def export(self, model: SoftmaxLM, vocab: Vocab, settings: Settings, out: Path, with_softmax: bool,
               overwrite: bool, inputs: Sequence[Path]) -> Path:
        """options.json (inference layout) + weights.hdf5 (official layout) + vocab.txt, and softmax.pt
        (which only continued training needs) `with_softmax`: a folder, never an archive."""
        if out.name.endswith(ARCHIVE_SUFFIXES):
            raise OutputError(f"{out}: an LSTM run exports to a folder (options.json, weights.hdf5, vocab.txt), not "
                              "an archive; give a folder name (only transformer runs export AllenNLP archives)")
        bilm = LstmBiLM(replace(model.bilm.options, extra={}))
        bilm.load_state_dict(model.bilm.state_dict())
        with AtomicOutput(out, is_dir=True, overwrite=overwrite, inputs=inputs) as staging:
            save_lstm_bilm(bilm, staging.path / "options.json", staging.path / "weights.hdf5")
            vocab.to_file(staging.path / "vocab.txt")
            if with_softmax:
                torch.save(model.softmax.state_dict(), staging.path / "softmax.pt")
        return out

    def continue_softmax(self, model: SoftmaxLM, source: Path, vocab: Vocab) -> None:
        """The export's softmax.pt (`export --with-softmax`), which fits only the vocabulary it was trained with."""
        if (source / "vocab.txt").is_file() and Vocab.from_file(source / "vocab.txt") != vocab:
            raise InputError(f"{source}/vocab.txt differs from the run's --vocab; continuing needs the same vocabulary")
        if (source / "softmax.pt").is_file():
            load_state(model.softmax, torch_load(source / "softmax.pt"), source / "softmax.pt")
        else:
            logger.warning("%s has no softmax.pt: the softmax starts from random weights", source)
