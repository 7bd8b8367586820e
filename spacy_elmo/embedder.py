"""Plain-Python ELMo, no spaCy: lists of tokens in, one float32 (L, n_tokens, D) array per sentence out,
from any biLM (LSTM or transformer): official files, an archive or folder, or a published model by name.
It sits above bilm/ and hub/ because it brings the two together (`from_pretrained`)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

from .bilm.batching import batch_layers, length_batches, split_layers
from .bilm.char_ids import CharBatch
from .bilm.interface import ContextualBiLM
from .bilm.loading import load_any_bilm
from .bilm.settings import BATCH_SIZE, CACHE_SIZE, MAX_BATCH_TOKENS, PRECISION, check_precision
from .errors import InputError
from .hub import resolve_bilm


class Embedder:
    """Runs a biLM over tokenised sentences without autograd.

    Stateless (default): sentences are bucketed by length and every one starts from a zero
    state, so a sentence's vectors never depend on its neighbours. Stateful (LSTM biLMs only):
    batches are taken in the given order and row b carries its LSTM state to row b of the next
    batch, which is how the AllenNLP and bilm-tf reference outputs were made.

    The char-CNN vector of a token does not depend on its context, so up to `cache_size` of them
    are kept across batches and frequent words skip the CNN. The cache assumes fixed weights:
    call clear_cache() after changing them (0 turns the cache off).

    `precision` ("fp32", "fp16", "bf16" or "int8", see spacy_elmo.bilm.precision) is how the products are
    computed; the weights stay fp32.
    """

    def __init__(self, bilm: ContextualBiLM, batch_size: int = BATCH_SIZE,
                 max_batch_tokens: Optional[int] = MAX_BATCH_TOKENS, stateful: bool = False,
                 cache_size: int = CACHE_SIZE, precision: str = PRECISION) -> None:
        if stateful and not bilm.supports_state:
            raise InputError(f"stateful=True needs a biLM that carries state between batches (an LSTM); "
                             f"this {bilm.options.kind} biLM reads every sentence on its own")
        self.precision = check_precision(precision)
        self.bilm = bilm.eval()
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.stateful = stateful
        self.cache_size = cache_size
        self._cache: Dict[str, torch.Tensor] = {}

    @classmethod
    def from_files(cls, options_file: Union[str, Path], weight_file: Union[str, Path], **kwargs) -> "Embedder":
        return cls(load_any_bilm(options_file=options_file, weight_file=weight_file), **kwargs)

    @classmethod
    def from_pretrained(cls, name: Optional[str] = None, cache_dir: Optional[Union[str, Path]] = None,
                        **kwargs) -> "Embedder":
        """A published model by name (see spacy_elmo.hub.MODELS, LSTM or transformer), downloaded into the
        cache once; none named: the model bundled with the package."""
        return cls(resolve_bilm(name, cache_dir=cache_dir), **kwargs)

    @classmethod
    def from_path(cls, path: Union[str, Path], **kwargs) -> "Embedder":
        """From an AllenNLP model archive or a folder with options.json + weights.hdf5."""
        return cls(load_any_bilm(path), **kwargs)

    @property
    def output_dim(self) -> int:
        return self.bilm.output_dim

    def reset_state(self) -> None:
        self.bilm.reset_state()

    def clear_cache(self) -> None:
        self._cache.clear()

    def _token_vectors(self, batch: CharBatch) -> torch.Tensor:
        """Char-CNN vectors of the batch's distinct tokens; the CNN runs only on tokens not cached."""
        missing = [row for row, token in enumerate(batch.tokens) if token not in self._cache]
        if len(missing) == len(batch.tokens):
            vectors = fresh = self.bilm.char_cnn(torch.from_numpy(batch.unique).to(self.bilm.device), self.precision)
        else:
            fresh = self.bilm.char_cnn(torch.from_numpy(batch.unique[missing]).to(self.bilm.device), self.precision)
            computed = dict(zip(missing, fresh))
            vectors = torch.stack([computed[row] if row in computed else self._cache[token]
                                   for row, token in enumerate(batch.tokens)])
        if self.cache_size:
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            self._cache.update((batch.tokens[row], vector) for row, vector in zip(missing, fresh))
        return vectors

    def embed_batch(self, sentences: Sequence[Sequence[str]]) -> List[np.ndarray]:
        """One forward pass over `sentences` in their order; in stateful mode row b is state row b."""
        if not sentences:
            return []
        if isinstance(sentences, str) or any(isinstance(s, str) for s in sentences):
            raise InputError("expected a list of token lists, e.g. [['Hello', 'world', '.']], found a string")
        batch = CharBatch.from_sentences(sentences, self.bilm.options.max_characters_per_token)
        return [x.to("cpu").numpy() for x in split_layers(self.layers(batch), batch.lengths)]

    def layers(self, batch: CharBatch) -> torch.Tensor:
        """`batch_layers` without autograd, at this Embedder's precision, with cached char-CNN vectors."""
        with torch.inference_mode():
            return batch_layers(self.bilm, batch, self._token_vectors(batch), self.stateful, self.precision)

    @property
    def chunk_size(self) -> int:
        """Sentences sorted together by embed_sentences: a stream cut at multiples of this gets the
        same batches, and so the same numbers, as the whole stream."""
        return self.batch_size * 16

    def embed_sentences(self, sentences: Iterable[Sequence[str]]) -> Iterator[np.ndarray]:
        """Arrays in input order. Stateless mode sorts by length inside each chunk of the stream."""
        chunk: List[Sequence[str]] = []
        for sentence in sentences:
            chunk.append(sentence)
            if len(chunk) >= self.chunk_size:
                yield from self._embed_chunk(chunk)
                chunk = []
        yield from self._embed_chunk(chunk)

    def _embed_chunk(self, chunk: List[Sequence[str]]) -> Iterator[np.ndarray]:
        if self.stateful:
            for start in range(0, len(chunk), self.batch_size):
                yield from self.embed_batch(chunk[start : start + self.batch_size])
            return
        results: List[Optional[np.ndarray]] = [None] * len(chunk)
        for group in length_batches([len(s) + 2 for s in chunk], self.batch_size, self.max_batch_tokens):
            for i, array in zip(group, self.embed_batch([chunk[i] for i in group])):
                results[i] = array
        yield from results  # type: ignore[misc]

    def embed_sentence(self, tokens: Sequence[str]) -> np.ndarray:
        return self.embed_batch([tokens])[0]
