"""Pretraining a transformer biLM: its batches (whole sentences packed into rows) and its loss.

Why not bilm-tf's packed windows, which the LSTM trains on: they cut sentences at arbitrary points
and rely on the LSTM state carried from one window to the next to keep the context. A transformer
has no state, so a cut sentence would lose its beginning, and a window starting mid-sentence
would put a word at position 0, where the embedder only ever puts `<S>`. So a transformer trains
as it is used (and as AllenNLP's LanguageModel trained it): every sentence `[<S>, w1..wn, </S>]`
is read on its own from position 0, the forward LM predicting the next token at every position
but `</S>`, the backward LM the previous one at every position but `<S>`. To waste little on
padding, several sentences share a row of `unroll_steps` positions; the attention masks keep them
apart (a token sees its own sentence only), so each is computed exactly as if it were alone.
The text, shards, vocabulary, streams and sampled softmax are the LSTM's. The export is an AllenNLP
model archive, with the softmax.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..atomic import AtomicOutput
from ..bilm.archive import VOCABULARY_NAME, write_archive
from ..bilm.archive_config import ALLENNLP_HEADS
from ..bilm.char_ids import BOS, EOS, CharBatch
from ..bilm.options import TransformerOptions, whole_filters
from ..bilm.transformer_bilm import TransformerBiLM
from .bilm_kind import ARCHIVE_SUFFIXES, Batch, BilmKind, Settings
from .corpus import SentenceStream
from .softmax import NO_TARGET, Softmax, SoftmaxLM
from .vocab import UNK, Vocab

ALLENNLP_OOV = "@@UNKNOWN@@"
UNUSED_ROW_BIAS = -1e4


@dataclass
class _Piece:
    """A sentence with its boundaries and the first of its tokens not yet placed in a row."""

    tokens: List[str]
    ids: np.ndarray
    start: int = 0

    @property
    def left(self) -> int:
        return len(self.tokens) - self.start


@dataclass
class Windows:
    """One batch: B rows of T positions. `segments` numbers the sentences of a row from 1 (0 = padding),
    `positions` counts from each sentence's start, `targets` (2, B, T) holds the next (row 0) and the
    previous (row 1) token's id, NO_TARGET where there is none."""

    rows: List[List[str]]
    positions: np.ndarray
    segments: np.ndarray
    targets: np.ndarray

    @property
    def n_tokens(self) -> int:
        return int((self.segments > 0).sum())


def _neighbours(ids: np.ndarray, at: np.ndarray, step: int) -> np.ndarray:
    """ids[at + step], NO_TARGET where that falls outside the sentence."""
    near = at + step
    inside = (near >= 0) & (near < len(ids))
    return np.where(inside, ids[np.clip(near, 0, len(ids) - 1)], NO_TARGET)


class SentenceWindows:
    """Rows of whole sentences, one after another (see the module docstring).

    A sentence that does not fit in what is left of a row starts the next row; one longer than a
    row is cut into row-long pieces, each read on its own from position 0 (the spaCy component also
    reads the windows it cuts from long inputs on their own, bracketed by <S>/</S>), its targets
    still those of the whole sentence. Iteration stops when the stream ends (evaluation); a last
    batch may have empty rows.
    """

    def __init__(self, stream: SentenceStream, vocab: Vocab, batch_size: int, window: int) -> None:
        self.stream, self.vocab = stream, vocab
        self.batch_size, self.window = batch_size, window
        self.pending: Optional[_Piece] = None

    def __iter__(self) -> "SentenceWindows":
        return self

    def _take(self) -> Optional[_Piece]:
        if self.pending is None:
            try:
                tokens = [BOS, *next(self.stream), EOS]
            except StopIteration:
                return None
            self.pending = _Piece(tokens, self.vocab.ids(tokens))
        return self.pending

    def __next__(self) -> Windows:
        shape = (self.batch_size, self.window)
        positions, segments = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
        targets = np.full((2, *shape), NO_TARGET, dtype=np.int64)
        rows: List[List[str]] = []
        for b in range(self.batch_size):
            row: List[str] = []
            while len(row) < self.window:
                piece = self._take()
                room = self.window - len(row)
                if piece is None or (piece.left > room and row):
                    break
                n = min(piece.left, room)
                span = slice(len(row), len(row) + n)
                at = np.arange(piece.start, piece.start + n)
                positions[b, span] = at - piece.start
                segments[b, span] = segments[b].max() + 1
                targets[0, b, span] = _neighbours(piece.ids, at, 1)
                targets[1, b, span] = _neighbours(piece.ids, at, -1)
                row.extend(piece.tokens[piece.start : piece.start + n])
                piece.start += n
                if piece.left == 0:
                    self.pending = None
            rows.append(row)
        if not rows[0]:
            raise StopIteration
        return Windows(rows, positions, segments, targets)

    def state_dict(self) -> Dict[str, Any]:
        pending = None if self.pending is None else (self.pending.tokens, self.pending.start)
        return {"stream": self.stream.state_dict(), "pending": pending}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])
        pending = state["pending"]
        self.pending = None if pending is None else _Piece(list(pending[0]), self.vocab.ids(pending[0]), pending[1])


def encode_windows(windows: Windows, max_chars: int) -> Tuple[torch.Tensor, ...]:
    """Model inputs: distinct tokens' char ids (U, L), the (B, T) index into them (padding points at
    <S>; it is masked), positions, segments and targets as tensors."""
    padded = [row + [BOS] * (windows.positions.shape[1] - len(row)) for row in windows.rows]
    chars = CharBatch.from_sentences(padded, max_chars, boundaries=False)
    return (torch.from_numpy(chars.unique), torch.from_numpy(chars.index), torch.from_numpy(windows.positions),
            torch.from_numpy(windows.segments), torch.from_numpy(windows.targets))


class TransformerBatches:
    """The trainer's view of SentenceWindows."""

    def __init__(self, settings: Settings, vocab: Vocab, paths: Sequence[Path], seed: int, training: bool,
                 batch_size: int) -> None:
        stream = SentenceStream(paths, settings.fmt, settings.lang, shuffle=training, loop=training, seed=seed,
                                min_epoch_tokens=batch_size * settings.unroll_steps)
        self.windows = SentenceWindows(stream, vocab, batch_size, settings.unroll_steps)
        self.max_chars = settings.max_characters_per_token

    def __iter__(self) -> "TransformerBatches":
        return self

    def __next__(self) -> Batch:
        windows = next(self.windows)
        counts = torch.from_numpy((windows.targets != NO_TARGET).sum(axis=(1, 2)))
        return encode_windows(windows, self.max_chars), windows.n_tokens, counts

    def state_dict(self) -> Dict[str, Any]:
        return {"windows": self.windows.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.windows.load_state_dict(state["windows"])


class TransformerLanguageModel(SoftmaxLM):
    """A TransformerBiLM and the softmax shared by both directions, which reads the top layer of each
    (after its final norm): AllenNLP's LanguageModel takes the contextualizer's output, which is that."""

    def __init__(self, options: TransformerOptions, n_classes: int, dropout: float, n_samples: int = 0,
                 seed: int = 0) -> None:
        super().__init__(n_classes, options.input_dim, dropout, n_samples, seed)
        self.bilm = TransformerBiLM(options, dropout)

    def forward(self, char_ids: torch.Tensor, index: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor,
                targets: torch.Tensor, state: None = None) -> Tuple[torch.Tensor, None]:
        """Per-direction mean losses (2,); no state to carry."""
        tokens = self.bilm.char_cnn(char_ids)[index]
        forward, backward = self.bilm.directions(tokens, positions, segments)
        return self.direction_losses(torch.stack([forward[-1], backward[-1]]), targets), None


def allennlp_softmax_state(softmax: Softmax) -> Dict[str, torch.Tensor]:
    """The softmax under the names of AllenNLP's LanguageModel with a SampledSoftmaxLoss (num_samples
    set, sparse_embeddings false): `_softmax_loss.softmax_w` (V + 1, P), `_softmax_loss.softmax_b` (V + 1,).

    AllenNLP's vocabulary puts padding at id 0 and the vocabulary file's line k at id k + 1, and its
    softmax predicts id k + 1 with row k: row k is our row k, and one last row is never a target.
    That row gets zero weights and a bias of -1e4, so it takes no probability mass.
    """
    weight, bias = softmax.weight.detach().cpu(), softmax.bias.detach().cpu()
    return {"_softmax_loss.softmax_w": torch.cat([weight, weight.new_zeros(1, weight.shape[1])]),
            "_softmax_loss.softmax_b": torch.cat([bias, bias.new_full((1,), UNUSED_ROW_BIAS)]),
            "_last_average_loss": torch.zeros(1)}


def write_allennlp_vocabulary(vocab: Vocab, folder: Path) -> Path:
    """AllenNLP's vocabulary folder: the softmax tokens in order in tokens.txt, <UNK> spelled as its OOV."""
    folder.mkdir(parents=True)
    lines = [ALLENNLP_OOV if token == UNK else token for token in vocab.tokens]
    (folder / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf8")
    (folder / "non_padded_namespaces.txt").write_text("*tags\n*labels\n", encoding="utf8")
    return folder


class TransformerKind(BilmKind):
    language_model = TransformerLanguageModel

    def architecture(self, settings: Mapping[str, Any]) -> TransformerOptions:
        return TransformerOptions(input_dim=settings["input_dim"], hidden_dim=settings["hidden_dim"],
                                  n_layers=settings["n_layers"],
                                  filters=whole_filters(settings["filters"], "filters"),
                                  char_embedding_dim=settings["char_embedding_dim"], n_highway=settings["n_highway"],
                                  n_heads=settings["n_heads"], max_characters_per_token=settings["max_characters_per_token"])

    def batches(self, settings: Settings, vocab: Vocab, paths: Sequence[Path], seed: int, training: bool,
                batch_size: int) -> TransformerBatches:
        return TransformerBatches(settings, vocab, paths, seed, training, batch_size)

    def export_warning(self, options: TransformerOptions) -> Optional[str]:
        if options.n_heads == ALLENNLP_HEADS:
            return None
        return (f"n_heads={options.n_heads}: this run trains, resumes and evaluates, but `export` writes AllenNLP "
                f"archives, whose transformer has {ALLENNLP_HEADS} heads")

    def export(self, model: SoftmaxLM, vocab: Vocab, settings: Settings, out: Path, with_softmax: bool,
               overwrite: bool, inputs: Sequence[Path]) -> Path:
        """An AllenNLP model archive, a folder or (`out` ending in .tar.gz) one file, always with the softmax
        and its vocabulary, so that allennlp could load it as a LanguageModel, not only embed with it."""
        as_tar = out.name.endswith(ARCHIVE_SUFFIXES)
        bilm = TransformerBiLM(replace(model.bilm.options, extra={}))
        bilm.load_state_dict(model.bilm.state_dict())
        archive_settings = {"num_samples": settings.n_negative_samples, "sparse_embeddings": False,
                            "dropout": settings.dropout}
        with AtomicOutput(out, is_dir=not as_tar, overwrite=overwrite, inputs=inputs) as staging, \
                tempfile.TemporaryDirectory(prefix="spacy-elmo-vocabulary-") as tmp:
            vocabulary = write_allennlp_vocabulary(vocab, Path(tmp) / VOCABULARY_NAME)
            write_archive(bilm, staging.path, vocabulary, allennlp_softmax_state(model.softmax), archive_settings,
                          as_tar)
        return out
