"""The `embed` command's work: tokenised text in, an HDF5 file of ELMo vectors out, in the layout
`allennlp elmo` wrote (one dataset per input line, named by its 0-based number, plus `sentence_to_index`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy as np

from ..atomic import AtomicOutput, check_target
from ..errors import InputError, OutputError

if TYPE_CHECKING:  # the command line imports this module for --help, which must not wait for torch
    from ..embedder import Embedder

LAYER_CHOICES = ("all", "top", "average")
STDIN = "-"

PART_LINES = 10_000  # under torchrun: lines per part file, the resumable unit of `embed`


def read_lines(source: Union[str, Path]) -> List[str]:
    """The lines of a UTF-8 text file ('-' reads stdin), line endings removed, so that index i is line i + 1.
    Any readable path will do, a named pipe, /dev/stdin or a shell's <(...) included: it is opened once."""
    if str(source) == STDIN:
        data = sys.stdin.buffer.read()
    else:
        path = Path(source)
        if path.is_dir():
            raise InputError(f"input {path} is a directory; expected a text file with one sentence per line")
        if not path.exists():
            raise InputError(f"input file not found: {path}")
        try:
            data = path.read_bytes()
        except OSError as err:
            raise InputError(f"{path}: cannot read the input ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(f"{source}: not UTF-8 text (invalid byte at offset {err.start}, line {line})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise InputError(f"{source}: the input is empty (expected one tokenised sentence per line)")
    return [line.rstrip("\r") for line in lines]


def select_layers(layers: np.ndarray, which: str) -> np.ndarray:
    """(N + 1, n, 2P) -> itself for 'all', the top layer or the layer mean (n, 2P) otherwise."""
    if which == "all":
        return layers
    if which == "top":
        return layers[-1]
    if which == "average":
        return layers.mean(axis=0, dtype=np.float32)
    raise InputError(f"layers must be one of {LAYER_CHOICES}, found {which!r}")


def check_output(output: Union[str, Path], inputs: Iterable[Optional[Union[str, Path]]],
                 overwrite: bool = True) -> None:
    """Refuse, before the model is loaded, an output that is a directory, lies in an input, or exists
    without `overwrite`."""
    output = Path(output)
    if output.is_dir():
        raise OutputError(f"output file {output} is a directory; give a file name, e.g. {output / 'elmo.hdf5'}")
    check_target(output, overwrite=overwrite, inputs=[p for p in inputs if p is not None], flag="output file")


def embed_file(embedder: Embedder, source: Union[str, Path], output: Union[str, Path], layers: str = LAYER_CHOICES[0],
               progress: bool = True, overwrite: bool = True) -> int:
    """Embed every line of `source` (tokens split on whitespace) into `output`; returns the line count.

    A blank line is an empty sentence: it gets a dataset with 0 tokens, so dataset i is always line
    i + 1. The file is written next to `output` under a temporary name and renamed when complete, so a
    failure never leaves a partial file or destroys an existing one; `overwrite=False` refuses one.
    """
    import h5py

    if layers not in LAYER_CHOICES:
        raise InputError(f"layers must be one of {LAYER_CHOICES}, found {layers!r}")
    lines = read_lines(source)
    check_output(output, [source], overwrite)
    with AtomicOutput(output, flag="output file") as staging, open(staging.path, "w+b") as handle:
        # h5py on a Python file object: a full disk is an OSError, not HDF5 failing in its finalizers
        with h5py.File(handle, "w") as f:
            with token_bar(lines, progress) as bar:
                write_vectors(f, embedder, lines, layers, bar.update)
            write_sentence_index(f, lines)
    return len(lines)


def token_bar(lines: Sequence[str], enabled: bool = True) -> Any:
    """A progress bar over the tokens of `lines`, with the rate averaged since the start. It moves once a
    chunk is written (write_vectors), so it shows no rate before one is known and none made up from the
    burst of lines a chunk yields at once (which once showed 16.69s/sentence for a 17-second job)."""
    from tqdm import tqdm

    return tqdm(total=sum(len(line.split()) for line in lines), unit="token", unit_scale=True, smoothing=0,
                file=sys.stderr, disable=not enabled)


def write_vectors(f: Any, embedder: Embedder, lines: Sequence[str], layers: str,
                  done: Callable[[int], Any] = lambda n: None, first: int = 0) -> None:
    """Dataset str(first + i) for each line i into the open HDF5 file `f`, one Embedder chunk at a time
    (the same batches as the whole stream); `done(tokens)` after each chunk."""
    for start in range(0, len(lines), embedder.chunk_size):
        chunk = [line.split() for line in lines[start : start + embedder.chunk_size]]
        for i, array in enumerate(embedder.embed_sentences(chunk), first + start):
            f.create_dataset(str(i), data=select_layers(array, layers))
        done(sum(len(tokens) for tokens in chunk))


def write_sentence_index(f: Any, lines: Sequence[str]) -> None:
    """The `sentence_to_index` JSON string: each stripped line to its number (the last one if repeated)."""
    import h5py

    index = f.create_dataset("sentence_to_index", (1,), dtype=h5py.string_dtype())
    index[0] = json.dumps({line.strip(): i for i, line in enumerate(lines)}, ensure_ascii=False)
