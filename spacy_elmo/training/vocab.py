"""The softmax (output) vocabulary of a biLM: one token per line, `<S>`, `</S>`, `<UNK>` first,
then by descending frequency, which the log-uniform negative sampler relies on (elmo-spec §8.2)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import numpy as np

from ..atomic import atomic_write_text
from ..bilm.char_ids import BOS, EOS
from ..errors import InputError

UNK = "<UNK>"
SPECIALS = (BOS, EOS, UNK)
SKIPPED_LINE = "!!!MAXTERMID"


class Vocab:
    """Token <-> id; out-of-vocabulary targets map to `<UNK>`. Inputs never use it: they are characters."""

    def __init__(self, tokens: Sequence[str], source: str = "vocabulary") -> None:
        missing = [s for s in SPECIALS if s not in tokens]
        if missing:
            raise InputError(f"{source}: the vocabulary must contain {', '.join(SPECIALS)}; missing {', '.join(missing)}")
        self.tokens: List[str] = list(tokens)
        self.index: Dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            if token in self.index:
                raise InputError(f"{source}: token {token!r} appears twice (lines {self.index[token] + 1} and {i + 1})")
            self.index[token] = i
        self.bos, self.eos, self.unk = (self.index[s] for s in SPECIALS)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def ids(self, tokens: Iterable[str]) -> np.ndarray:
        get, unk = self.index.get, self.unk
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int64)

    def unknown_rate(self, sentences: Iterable[Sequence[str]]) -> Tuple[float, int]:
        """(share of the tokens not in the vocabulary, number of tokens) of `sentences`."""
        tokens = [t for sentence in sentences for t in sentence]
        unknown = sum(t not in self.index for t in tokens)
        return (unknown / len(tokens) if tokens else 0.0), len(tokens)

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "Vocab":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"vocabulary file not found: {path}")
        try:
            lines = path.read_text(encoding="utf8").splitlines()
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: the vocabulary is not valid UTF-8 (byte {err.start})") from None
        except OSError as err:
            raise InputError(f"{path}: cannot read the vocabulary ({err.strerror or err})") from None
        tokens = [line.strip() for line in lines if line.strip() and line.strip() != SKIPPED_LINE]
        return cls(tokens, source=str(path))

    def to_file(self, path: Union[str, Path]) -> None:
        atomic_write_text(path, "\n".join(self.tokens) + "\n")

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int = 50_000, min_count: int = 1) -> "Vocab":
        """The specials, then the `max_size - 3` most frequent tokens seen at least `min_count` times."""
        if max_size <= len(SPECIALS):
            raise InputError(f"vocabulary size must be larger than {len(SPECIALS)}, found {max_size}")
        counts: Counter = Counter()
        for sentence in sentences:
            counts.update(sentence)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if not ranked:
            raise InputError("cannot build a vocabulary: the text has no tokens")
        return cls(list(SPECIALS) + ranked[: max_size - len(SPECIALS)])
