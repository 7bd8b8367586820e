"""What several benchmarks (and the precision tests) share: the EWT reader, the per-token cosine between
two runs, and the --threads/--out arguments every measurement takes. A helper module, not a program:
the benchmarks import it from their own folder, the tests through conftest.load_module."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np


def read_conllu(path: Path, limit: int) -> List[List[str]]:
    """Word forms of the first `limit` sentences (multi-word ranges and empty nodes skipped)."""
    sentences: List[List[str]] = []
    tokens: List[str] = []
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.strip():
            if tokens:
                sentences.append(tokens)
                tokens = []
                if len(sentences) == limit:
                    break
        elif not line.startswith("#"):
            cols = line.split("\t")
            if cols[0].isdigit():
                tokens.append(cols[1])
    return sentences


def token_cosines(reference: Sequence[np.ndarray], other: Sequence[np.ndarray],
                  view: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per-token cosine between two runs, for the layer view `view` of each sentence's (L, n, D) array."""
    found = []
    for ref, out in zip(reference, other):
        a, b = view(ref), view(out)
        found.append((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))
    return np.concatenate(found)


def parse_args(parser: argparse.ArgumentParser, threads: int) -> argparse.Namespace:
    """The arguments, with --threads (torch's threads, set here) and --out (the result's JSON file)."""
    import torch

    parser.add_argument("--threads", type=int, default=threads, help="torch threads")
    parser.add_argument("--out", type=Path, help="result JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def write_json(out: Optional[Path], result: Any) -> None:
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")
