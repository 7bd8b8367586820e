"""Training text for the biLM (elmo-spec §8.1, §8.3).

Reading: text files or directories in one of three formats -- "tokens" (one pre-tokenised sentence
per line), "lines" (one raw sentence per line, tokenised with spaCy) and "raw" (running text,
tokenised and sentence-split with spaCy). Streaming: shards are loaded one at a time; each biLM kind
makes its batches from these streams (lstm_lm.py, transformer_lm.py).
"""
from __future__ import annotations

import glob
import logging
import random
import re
from multiprocessing import Pool
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..atomic import AtomicOutput, PathLike
from ..errors import InputError
from ..signals import quiet_worker

logger = logging.getLogger(__name__)

FORMATS = ("raw", "lines", "tokens")
MAX_LINE_CHARS = 100_000
"""Longer lines (or raw paragraphs) are skipped with a warning: they are almost always broken data."""

LANG = "en"
"""The spaCy language whose tokenizer splits raw text, unless one is named."""
Sentence = List[str]

_PG_START = re.compile(r"^\*{3}\s*START OF.*$|^\*END\*?\s*THE SMALL PRINT.*$", re.MULTILINE | re.IGNORECASE)
_PG_END = re.compile(r"^\*{3}\s*END OF.*$|^\s*End of (the )?Project Gutenberg.*$", re.MULTILINE | re.IGNORECASE)


def expand_paths(paths: Iterable[PathLike]) -> List[Path]:
    """Files, directories (every non-hidden file below, sorted) and glob patterns, in the order given. A
    path named as such may also be a stream (a named pipe, /dev/stdin, a shell's <(...)), read once."""
    found: List[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"no text files found at {item}")
            found.extend(matches)
    if not found:
        raise InputError(f"no text files found in {[str(p) for p in paths]}")
    return found


def read_text(path: PathLike) -> str:
    """A file's text; empty, binary and non-UTF-8 files are errors that name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read the text file ({err.strerror or err})") from None
    if not data:
        raise InputError(f"{path}: the file is empty (0 bytes)")
    if not data.strip():
        raise InputError(f"{path}: the file holds only whitespace ({len(data):,} bytes), no text")
    if b"\x00" in data:
        raise InputError(f"{path}: looks like a binary file (it contains NUL bytes); expected UTF-8 text")
    try:
        return data.decode("utf8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not valid UTF-8 (bad byte at offset {err.start}); re-encode the file as UTF-8") from None


def strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg file, between its START and END markers (old or new style).

    Text without markers is returned unchanged.
    """
    start = _PG_START.search(text)
    begin = start.end() if start else 0
    end = _PG_END.search(text, begin)
    return text[begin : end.start() if end else len(text)]


class Tokenizer:
    """spaCy's rule-based tokenizer (and sentencizer) of a language, so training sees spaCy's tokens."""

    def __init__(self, lang: str) -> None:
        import spacy

        try:
            self.nlp = spacy.blank(lang)
        except Exception as err:
            raise InputError(f"no spaCy language {lang!r} to tokenise with ({err})") from None
        self.nlp.add_pipe("sentencizer")

    def tokenize(self, texts: Iterable[str]) -> Iterator[Sentence]:
        """One sentence per text."""
        for doc in self.nlp.tokenizer.pipe(texts, batch_size=256):
            yield [t.text for t in doc if not t.is_space]

    def sentences(self, texts: Iterable[str]) -> Iterator[Sentence]:
        """Sentences of running texts."""
        for doc in self.nlp.pipe(texts, batch_size=64):
            for sent in doc.sents:
                tokens = [t.text for t in sent if not t.is_space]
                if tokens:
                    yield tokens


_TOKENIZERS: Dict[str, Tokenizer] = {}


def _tokenizer(lang: str) -> Tokenizer:
    if lang not in _TOKENIZERS:
        _TOKENIZERS[lang] = Tokenizer(lang)
    return _TOKENIZERS[lang]


def _skip_long(units: Iterable[str], path: Path, what: str) -> Iterator[str]:
    skipped = 0
    for unit in units:
        if len(unit) > MAX_LINE_CHARS:
            skipped += 1
        else:
            yield unit
    if skipped:
        logger.warning("%s: skipped %d %s longer than %d characters", path, skipped, what, MAX_LINE_CHARS)


def read_sentences(path: PathLike, fmt: str = "tokens", lang: str = LANG, gutenberg: bool = False) -> List[Sentence]:
    """The sentences of one file as token lists (see the module docstring for the formats)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown text format {fmt!r}; expected one of {FORMATS}")
    path = Path(path)
    text = read_text(path)
    if gutenberg:
        text = strip_gutenberg(text)
    return _sentences(text, path, fmt, lang)


def sample_sentences(path: PathLike, fmt: str = "tokens", lang: str = LANG,
                     max_bytes: int = 1 << 20) -> List[Sentence]:
    """The sentences of the whole lines in the first `max_bytes` of a text file: a quick look at a corpus."""
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read(max_bytes)
    if len(data) == max_bytes and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return _sentences(data.decode("utf8", errors="replace"), path, fmt, lang)


def _sentences(text: str, path: Path, fmt: str, lang: str) -> List[Sentence]:
    if fmt == "raw":
        paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
        return list(_tokenizer(lang).sentences(_skip_long((p for p in paragraphs if p), path, "paragraphs")))
    lines = _skip_long((line for line in text.splitlines() if line.strip()), path, "lines")
    if fmt == "lines":
        return [s for s in _tokenizer(lang).tokenize(lines) if s]
    return [line.split() for line in lines]


def _prepare_one(job: Tuple[str, str, str, bool]) -> Tuple[str, List[str]]:
    path, fmt, lang, gutenberg = job
    return path, [" ".join(s) for s in read_sentences(path, fmt, lang, gutenberg)]


def tokenize_files(inputs: Sequence[PathLike], fmt: str = "raw", lang: str = LANG, gutenberg: bool = False,
                   n_process: int = 1) -> Dict[str, List[str]]:
    """Each file's sentences as lines of space-separated tokens, files tokenised in `n_process` processes."""
    jobs = [(str(p), fmt, lang, gutenberg) for p in expand_paths(inputs)]
    if n_process > 1 and len(jobs) > 1:
        with Pool(min(n_process, len(jobs)), initializer=quiet_worker) as pool:
            return dict(pool.imap_unordered(_prepare_one, jobs, chunksize=1))
    return dict(_prepare_one(job) for job in jobs)


def write_shards(lines: List[str], out_dir: PathLike, n_shards: int = 20, seed: int = 0,
                 prefix: str = "shard", overwrite: bool = False) -> List[Path]:
    """Shuffle sentence lines and deal them into shards, so every streamed shard mixes all sources.
    The directory appears with all its shards or not at all; `overwrite` replaces an existing one."""
    if not lines:
        raise InputError(f"no sentences to write to {out_dir}")
    lines = list(lines)
    random.Random(seed).shuffle(lines)
    n_shards = max(1, min(n_shards, len(lines)))
    names = [f"{prefix}-{k:05d}.txt" for k in range(n_shards)]
    with AtomicOutput(out_dir, is_dir=True, overwrite=overwrite) as staging:
        for k, name in enumerate(names):
            (staging.path / name).write_text("\n".join(lines[k::n_shards]) + "\n", encoding="utf8")
    return [Path(out_dir) / name for name in names]


class SentenceStream:
    """Sentences from shards, one shard in memory at a time (bilm-tf's LMDataset).

    Training (`loop=True`): shards in random order without replacement, refilled when exhausted;
    each shard's sentences shuffled on load. Evaluation (`loop=False, shuffle=False`): one pass in
    file order. The stream's position is a small dict, so a checkpoint can resume it exactly.
    """

    def __init__(self, shards: Sequence[PathLike], fmt: str = "tokens", lang: str = LANG, shuffle: bool = True,
                 loop: bool = True, seed: int = 0, min_epoch_tokens: int = 0) -> None:
        self.shards = [str(p) for p in shards]
        if not self.shards:
            raise InputError("no shards to read sentences from")
        self.fmt, self.lang, self.shuffle, self.loop = fmt, lang, shuffle, loop
        self.min_epoch_tokens = min_epoch_tokens
        self.rng = np.random.default_rng(seed)
        self.queue: List[str] = []
        self.current: Optional[str] = None
        self.order_seed = 0
        self.pos = 0
        self.epoch = 0
        self.epoch_tokens = 0
        self._sentences: List[Sentence] = []
        self._order: Optional[np.ndarray] = None
        self._refill()

    def _refill(self) -> None:
        order = self.rng.permutation(len(self.shards)) if self.shuffle else np.arange(len(self.shards))
        self.queue = [self.shards[i] for i in order[::-1]]

    def _load(self, path: str, order_seed: int) -> None:
        self.current, self.order_seed = path, order_seed
        self._sentences = read_sentences(path, self.fmt, self.lang)
        self._order = None
        if self.shuffle:
            self._order = np.random.default_rng(order_seed).permutation(len(self._sentences))

    def __iter__(self) -> "SentenceStream":
        return self

    def __next__(self) -> Sentence:
        while self.current is None or self.pos >= len(self._sentences):
            if not self.queue:
                self._end_epoch()
            self._load(self.queue.pop(), int(self.rng.integers(2**62)))
            self.pos = 0
        i = self.pos if self._order is None else int(self._order[self.pos])
        self.pos += 1
        sentence = self._sentences[i]
        self.epoch_tokens += len(sentence) + 2
        return sentence

    def _end_epoch(self) -> None:
        if not self.loop:
            raise StopIteration
        if self.epoch_tokens < max(self.min_epoch_tokens, 1) and self.current is not None:
            raise InputError(
                f"the training text ({len(self.shards)} file(s), first {self.shards[0]}) has only {self.epoch_tokens} "
                f"tokens with boundaries; one batch needs {self.min_epoch_tokens}: use more text or a smaller "
                "batch size / unroll steps"
            )
        self.epoch += 1
        self.epoch_tokens = 0
        self._refill()

    def state_dict(self) -> Dict[str, Any]:
        """The position, with shards as indices into `shards`, so a moved or copied run resumes."""
        where = {path: i for i, path in enumerate(self.shards)}
        return {"rng": self.rng.bit_generator.state, "queue": [where[p] for p in self.queue],
                "current": None if self.current is None else where[self.current],
                "order_seed": self.order_seed, "pos": self.pos, "epoch": self.epoch, "epoch_tokens": self.epoch_tokens}

    def _shard(self, saved: Union[int, str]) -> str:
        """A shard of a saved position: an index, or a path in checkpoints made before indices."""
        if isinstance(saved, int) and 0 <= saved < len(self.shards):
            return self.shards[saved]
        if saved in self.shards:
            return str(saved)
        raise InputError(f"the checkpoint's position names shard {saved!r}, which is not among the "
                         f"{len(self.shards)} training files now found; resume with the run's training files")

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.queue = [self._shard(s) for s in state["queue"]]
        self.epoch, self.epoch_tokens = state["epoch"], state["epoch_tokens"]
        self.current, self._sentences = None, []
        if state["current"] is not None:
            self._load(self._shard(state["current"]), state["order_seed"])
        self.pos = state["pos"]
