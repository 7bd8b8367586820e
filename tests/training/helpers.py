"""Shared by the training tests: a small learnable language, tiny runs of each biLM kind, their logs."""
import json
import math
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import List

import numpy as np

from spacy_elmo.training.config import TrainConfig
from spacy_elmo.training.vocab import Vocab

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["lstm", "transformer"]
SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "she", "he"]
VERBS = ["sat on", "looked at", "walked to", "saw", "liked"]
OBJECTS = ["the mat", "a tree", "the house", "her car", "the river bank"]
SIZES = {"lstm": {"lstm_dim": 32, "projection_dim": 16, "unroll_steps": 10},
         "transformer": {"input_dim": 16, "hidden_dim": 32, "n_heads": 8, "unroll_steps": 16}}
TINY = {"lstm": ["--lstm-dim", "16", "--projection-dim", "8", "--unroll-steps", "5"],
        "transformer": ["--bilm", "transformer", "--input-dim", "16", "--hidden-dim", "32", "--n-layers", "1",
                        "--unroll-steps", "12"]}
"""`pretrain` options of a tiny run of each kind; TINY_ARGS adds the shared ones."""
SHARED_ARGS = ["--filters", "1:4,2:4", "--char-dim", "4", "--batch-size", "4", "--n-negative-samples", "8",
               "--log-every", "1", "--threads", "1"]
TINY_ARGS = {kind: [*args, *SHARED_ARGS] for kind, args in TINY.items()}


def make_corpus(root: Path, n_sentences: int = 400, n_shards: int = 2, seed: int = 0) -> Path:
    """A small structured language (subject verb object .) that a tiny biLM can learn in seconds."""
    rng = np.random.default_rng(seed)
    lines = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} ." for _ in range(n_sentences)]
    (root / "train").mkdir(parents=True)
    for k in range(n_shards):
        (root / "train" / f"shard-{k}.txt").write_text("\n".join(lines[k::n_shards]) + "\n", encoding="utf8")
    (root / "heldout.txt").write_text("\n".join(lines[:60]) + "\n", encoding="utf8")
    tokens = sorted({t for line in lines for t in line.split()})
    Vocab(["<S>", "</S>", "<UNK>"] + tokens).to_file(root / "vocab.txt")
    return root


def tiny_config(root: Path, bilm: str = "lstm", **overrides) -> TrainConfig:
    """A run that learns the small language within tens of steps: bilm-tf's Adagrad 0.2, not the default Adam
    0.002 that suits real corpora."""
    config = TrainConfig(train=[str(root / "train")], vocab=str(root / "vocab.txt"), output=str(root / "run"),
                         bilm=bilm, n_layers=2, filters=[[1, 8], [2, 8], [3, 16]], char_embedding_dim=4,
                         n_highway=1, batch_size=8, n_negative_samples=8, max_steps=60, log_every=1,
                         checkpoint_every=1000, checkpoint_minutes=1000.0, heldout=[str(root / "heldout.txt")],
                         eval_batch_size=4, progress=False, threads=1, optimizer="adagrad", learning_rate=0.2,
                         **SIZES[bilm])
    return replace(config, **overrides)


def log_records(run: Path) -> List[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def losses(run: Path) -> List[float]:
    return [r["loss"] for r in log_records(run) if "loss" in r]


def unigram_perplexity(root: Path) -> float:
    """The held-out perplexity of the training text's unigram model (each direction predicts every
    token and one sentence boundary per sentence): what a biLM must beat to have used any context."""
    def targets(path: Path) -> List[str]:
        return [t for line in path.read_text().splitlines() for t in [*line.split(), "</S>"]]

    counts = Counter(t for shard in sorted((root / "train").iterdir()) for t in targets(shard))
    total = sum(counts.values())
    heldout = targets(root / "heldout.txt")
    return math.exp(-sum(math.log(counts[t] / total) for t in heldout) / len(heldout))


def torchrun(args, cwd: Path, env=None) -> subprocess.CompletedProcess:
    """`pretrain ARGS` in 2 processes."""
    env = dict(env or os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "spacy_elmo", "pretrain", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
