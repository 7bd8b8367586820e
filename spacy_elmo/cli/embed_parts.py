"""`embed` across processes and machines, launched by torchrun (or anything that sets RANK and WORLD_SIZE).

The input is cut into parts of whole Embedder chunks, so every batch is the one a single process
would make and the vectors are the same numbers. Part k goes to rank k mod WORLD_SIZE (a part's
lines are contiguous; parts interleave, so ranks finish together). Each part is an HDF5 file in
`OUTPUT.parts/`, written under a temporary name and renamed, and stamped with a fingerprint of the
input, the model and the settings. A rerun skips every part that is there with the same fingerprint,
whatever the number of processes. When all parts are done (a barrier), rank 0 merges them into
OUTPUT, the same file a single process writes, and removes the parts.

Why a merge and not an HDF5 virtual-dataset index: the output is one self-contained file that any
HDF5 reader opens, that can be moved or copied alone, with the layout `allennlp elmo` users expect;
the price is one sequential copy of the vectors on rank 0's machine. OUTPUT's directory must be
shared by all machines.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import h5py
import torch

from .. import distributed
from ..atomic import AtomicOutput, special_kind
from ..embedder import Embedder
from ..bilm.loading import bilm_config
from ..errors import InputError, OutputError
from .embed_file import PART_LINES, STDIN, check_output, read_lines, token_bar, write_sentence_index, write_vectors

BARRIER_TIMEOUT = timedelta(hours=24)  # ranks wait for the slowest; a dead rank ends the job sooner


def part_bounds(n_lines: int, part_lines: int, chunk: int) -> List[Tuple[int, int]]:
    """[start, end) of each part: part_lines rounded up to whole chunks, the last part shorter."""
    size = -(-part_lines // chunk) * chunk
    return [(start, min(start + size, n_lines)) for start in range(0, n_lines, size)]


def parts_dir(output: Union[str, Path]) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".parts")


def part_path(directory: Path, bounds: Tuple[int, int]) -> Path:
    return directory / f"part-{bounds[0]:012d}-{bounds[1]:012d}.hdf5"


def fingerprint(embedder: Embedder, lines: Sequence[str], layers: str) -> str:
    """What a part's numbers depend on: the lines, the biLM (options and weights), and the settings."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf8") + b"\n")
    settings = {"layers": layers, "precision": embedder.precision, "batch_size": embedder.batch_size,
                "max_batch_tokens": embedder.max_batch_tokens, "bilm": bilm_config(embedder.bilm)}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in embedder.bilm.state_dict().items():
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def part_done(path: Path, key: str) -> bool:
    """A committed part of this very job (parts are renamed into place whole, so one that opens is complete)."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("fingerprint") == key
    except OSError:
        return False


def write_part(embedder: Embedder, lines: Sequence[str], bounds: Tuple[int, int], path: Path, layers: str,
               key: str, done) -> None:
    with AtomicOutput(path, flag="part file") as staging, open(staging.path, "w+b") as handle:
        with h5py.File(handle, "w") as f:
            f.attrs["fingerprint"] = key
            write_vectors(f, embedder, lines[bounds[0] : bounds[1]], layers, done, first=bounds[0])


def merge_parts(directory: Path, bounds: Sequence[Tuple[int, int]], lines: Sequence[str], output: Path,
                key: str) -> None:
    """Rank 0, after the barrier: the parts in line order into one file written atomically, then no parts."""
    missing = [part_path(directory, b).name for b in bounds if not part_done(part_path(directory, b), key)]
    if missing:
        raise OutputError(f"{directory}: {len(missing)} part(s) missing or from another job after all processes "
                          f"finished (first: {missing[0]}); run the same command again to redo them")
    with AtomicOutput(output, flag="output file") as staging, open(staging.path, "w+b") as handle:
        with h5py.File(handle, "w") as out:
            for b in bounds:
                with h5py.File(part_path(directory, b), "r") as part:
                    for i in range(*b):
                        out.create_dataset(str(i), data=part[str(i)][()])
            write_sentence_index(out, lines)
    shutil.rmtree(directory, ignore_errors=True)


def barrier() -> None:
    """Wait for every rank, over gloo whatever the device: the parts are files, not tensors."""
    size = distributed.world()[1]
    with distributed.process_group(size, torch.device("cpu"), BARRIER_TIMEOUT):
        distributed.barrier(size)


def embed_distributed(embedder: Embedder, source: Union[str, Path], output: Union[str, Path], layers: str = "all",
                      part_lines: int = PART_LINES, progress: bool = True, overwrite: bool = True) -> Tuple[int, int]:
    """This rank's share of `embed_file`, then (rank 0) the merge; returns (lines, parts this rank wrote)."""
    rank, size = distributed.world()
    if str(source) == STDIN or special_kind(Path(source)):
        raise InputError(f"under torchrun every process reads the input itself, which a stream ({source}) allows "
                         "only once: give a regular file (save the text to one first), or run one process")
    if embedder.stateful:
        raise InputError("--stateful carries the LSTM state through the file in order, which processes cannot "
                         "share: drop --stateful or run one process")
    lines = read_lines(source)
    output = Path(output)
    if rank == 0:
        check_output(output, [source], overwrite)
    key = fingerprint(embedder, lines, layers)
    directory = parts_dir(output)
    try:
        directory.mkdir(exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the parts directory {directory}: {err.strerror or err}") from None
    bounds = part_bounds(len(lines), part_lines, embedder.chunk_size)
    todo = [b for k, b in enumerate(bounds) if k % size == rank and not part_done(part_path(directory, b), key)]
    with token_bar([line for start, end in todo for line in lines[start:end]], progress and rank == 0) as bar:
        for b in todo:
            write_part(embedder, lines, b, part_path(directory, b), layers, key, bar.update)
    barrier()
    if rank == 0:
        merge_parts(directory, bounds, lines, output, key)
    return len(lines), len(todo)
