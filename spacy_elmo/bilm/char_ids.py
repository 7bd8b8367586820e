"""Token strings to the biLM's character ids (elmo-spec §1), and padded batches of them.

Ids here already carry the +1 inference offset: 0 is reserved for "no token", so every
table the biLM reads has a zero row 0 and the 261 trained rows after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Sequence, Tuple

import numpy as np

from ..errors import InputError

MAX_CHARS = 50
BEGIN_SENTENCE_CHAR = 256
END_SENTENCE_CHAR = 257
BEGIN_WORD_CHAR = 258
END_WORD_CHAR = 259
PADDING_CHAR = 260
N_CHARACTERS = 262

BOS = "<S>"
EOS = "</S>"


def _marker_ids(char: int, max_chars: int) -> np.ndarray:
    ids = np.full(max_chars, PADDING_CHAR, dtype=np.int64)
    ids[:3] = (BEGIN_WORD_CHAR, char, END_WORD_CHAR)
    return ids + 1


@lru_cache(maxsize=200_000)
def _encode(token: str, max_chars: int) -> bytes:
    if token == BOS:
        return _marker_ids(BEGIN_SENTENCE_CHAR, max_chars).tobytes()
    if token == EOS:
        return _marker_ids(END_SENTENCE_CHAR, max_chars).tobytes()
    data = token.encode("utf8", "ignore")[: max_chars - 2]
    ids = np.full(max_chars, PADDING_CHAR, dtype=np.int64)
    ids[0] = BEGIN_WORD_CHAR
    ids[1 : len(data) + 1] = np.frombuffer(data, dtype=np.uint8)
    ids[len(data) + 1] = END_WORD_CHAR
    return (ids + 1).tobytes()


def token_to_ids(token: str, max_chars: int = MAX_CHARS) -> np.ndarray:
    """The `max_chars` ids of one token. The literal strings <S> and </S> are sentence boundaries,
    as in both reference implementations; longer tokens are cut after max_chars - 2 UTF-8 bytes."""
    return np.frombuffer(_encode(token, max_chars), dtype=np.int64).copy()


@dataclass
class CharBatch:
    """Sentences with boundaries added, as distinct tokens plus an index into them.

    The char CNN runs once per row of `unique` (padding never reaches it); `index[b, t]` is the
    row of the token at position t of sentence b, and `lengths[b]` counts <S> and </S>.
    Positions at or after lengths[b] are padding and point at row 0. `tokens` are the strings of the
    rows of `unique`, so a caller can reuse token vectors across batches.
    """

    unique: np.ndarray
    index: np.ndarray
    lengths: np.ndarray
    tokens: Tuple[str, ...] = ()

    @classmethod
    def from_sentences(cls, sentences: Sequence[Sequence[str]], max_chars: int = MAX_CHARS,
                       boundaries: bool = True) -> "CharBatch":
        """`boundaries=False` takes each row as it is: training windows hold their own <S> and </S>."""
        first, last = ((BOS,), (EOS,)) if boundaries else ((), ())
        lengths = np.array([len(s) + len(first) + len(last) for s in sentences], dtype=np.int64)
        width = int(lengths.max()) if len(sentences) else len(first) + len(last)
        index = np.zeros((len(sentences), width), dtype=np.int64)
        rows: Dict[str, int] = {BOS: 0}
        for b, sentence in enumerate(sentences):
            for t, token in enumerate((*first, *sentence, *last)):
                if not isinstance(token, str):
                    raise InputError(f"sentence {b}: token {t - len(first)} is {type(token).__name__}, expected str")
                index[b, t] = rows.setdefault(token, len(rows))
        unique = np.empty((len(rows), max_chars), dtype=np.int64)
        for token, row in rows.items():
            unique[row] = np.frombuffer(_encode(token, max_chars), dtype=np.int64)
        return cls(unique=unique, index=index, lengths=lengths, tokens=tuple(rows))


def batch_to_ids(sentences: Sequence[Sequence[str]], max_chars: int = MAX_CHARS) -> np.ndarray:
    """Dense (B, T, max_chars) ids without boundaries, all-zero rows for padding (AllenNLP's layout)."""
    width = max((len(s) for s in sentences), default=0)
    out = np.zeros((len(sentences), width, max_chars), dtype=np.int64)
    for b, sentence in enumerate(sentences):
        for t, token in enumerate(sentence):
            out[b, t] = np.frombuffer(_encode(token, max_chars), dtype=np.int64)
    return out
