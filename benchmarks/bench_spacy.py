"""What the spaCy component costs on top of the raw biLM: `spacy benchmark speed` words/s next to Embedder tokens/s.

    python benchmarks/bench_spacy.py [--threads 1] [--rounds 2] [--out results.json]

For each model (the tiny AllenNLP test fixture, a randomly initialised biLM of the published
"small" size, and the bundled default model when it exists) the script saves an `elmo`-only
pipeline, then alternates, back to back so both see the same machine load:
  raw:  Embedder.embed_sentences over the very token lists `spacy benchmark speed` times
        (same docs, same order, batches of `--batch-size` docs, 64 rows / 4,096 padded tokens);
  pipe: `python -m spacy benchmark speed PIPELINE DATA --batch-size B --batches N --no-shuffle`.
Both report the mean over batches of tokens per second, as `spacy benchmark speed` does. The same
two runs are also timed in this process by CPU time (one torch thread), which load from other
processes on a shared machine moves much less than wall-clock time.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import spacy
import torch
from spacy.tokens import DocBin

from common import parse_args, write_json
from spacy_elmo import LstmBiLM, LstmOptions, WeightsError, load_lstm_bilm, save_lstm_bilm
from spacy_elmo.bilm.options import PUBLISHED_FILTERS
from spacy_elmo.embedder import Embedder
from spacy_elmo.hub import resolve_model_files

ROOT = Path(__file__).resolve().parents[1]

EWT_DEV = ROOT / "assets" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"   # `spacy project assets` or `project run data`
FIXTURE = ROOT / "tests" / "data" / "fixtures" / "elmo-allennlp"


def ewt_texts(limit: int) -> List[str]:
    texts = [line[len("# text = "):] for line in EWT_DEV.read_text(encoding="utf8").splitlines()
             if line.startswith("# text = ")]
    return texts[:limit]


def model_files(workdir: Path) -> Dict[str, tuple]:
    files = {"fixture (2P=32)": (FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5")}
    torch.manual_seed(0)
    small = LstmBiLM(LstmOptions(filters=tuple(PUBLISHED_FILTERS), char_embedding_dim=16, n_layers=2, lstm_dim=1024,
                             projection_dim=128, n_highway=1))
    save_lstm_bilm(small, workdir / "small.json", workdir / "small.hdf5")
    files["random, published 'small' size (LSTM 1024, projection 128, 2P=256)"] = (workdir / "small.json", workdir / "small.hdf5")
    try:
        files["bundled default"] = resolve_model_files()
    except WeightsError:
        pass
    return files


def raw_words_per_second(embedder: Embedder, docs: List[List[str]], batch_size: int, n_batches: int,
                         warmup: int) -> float:
    """Mean over batches of tokens/s, the statistic `spacy benchmark speed` prints."""
    for _ in range(warmup):
        list(embedder.embed_sentences(docs))
    stream = [docs[i % len(docs)] for i in range(n_batches * batch_size)]
    rates = []
    for start in range(0, len(stream), batch_size):
        batch = stream[start : start + batch_size]
        began = time.perf_counter()
        list(embedder.embed_sentences(batch))
        rates.append(sum(len(d) for d in batch) / (time.perf_counter() - began))
    return float(np.mean(rates))


def cpu_words_per_second(run, docs: List, batch_size: int, n_batches: int) -> float:
    """Tokens per CPU second of this process (one torch thread), which other processes on the machine barely move."""
    stream = [docs[i % len(docs)] for i in range(n_batches * batch_size)]
    began = time.process_time()
    for start in range(0, len(stream), batch_size):
        run(stream[start : start + batch_size])
    return sum(len(d) for d in stream) / (time.process_time() - began)


def pipe_words_per_second(pipeline: Path, data: Path, batch_size: int, n_batches: int, warmup: int,
                          threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    run = subprocess.run([sys.executable, "-m", "spacy", "benchmark", "speed", str(pipeline), str(data),
                          "--batch-size", str(batch_size), "--batches", str(n_batches), "--no-shuffle",
                          "--warmup", str(warmup)], capture_output=True, text=True, env=env, check=True)
    return float(re.search(r"Mean: ([\d.]+) words/s", run.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--docs", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=1)
    args = parse_args(parser, threads=1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        nlp_tok = spacy.blank("en")
        docs = [nlp_tok.make_doc(text) for text in ewt_texts(args.docs)]
        data = workdir / "ewt-dev.spacy"
        DocBin(docs=docs).to_disk(data)
        words = [[t.text for t in doc] for doc in docs]
        for label, (options, weights) in model_files(workdir).items():
            nlp = spacy.blank("en")
            nlp.add_pipe("elmo", config={"model": {"options_file": str(options), "weight_file": str(weights)}})
            nlp.initialize()
            pipeline = workdir / "pipeline"
            nlp.to_disk(pipeline)
            embedder = Embedder(load_lstm_bilm(options, weights), batch_size=64, max_batch_tokens=4096)
            for round_ in range(args.rounds):
                raw = raw_words_per_second(embedder, words, args.batch_size, args.batches, args.warmup)
                pipe = pipe_words_per_second(pipeline, data, args.batch_size, args.batches, args.warmup, args.threads)
                raw_cpu = cpu_words_per_second(lambda batch: list(embedder.embed_sentences(batch)), words,
                                               args.batch_size, args.batches)
                pipe_cpu = cpu_words_per_second(lambda batch: list(nlp.pipe(batch, batch_size=args.batch_size)),
                                                docs, args.batch_size, args.batches)
                row = dict(model=label, round=round_ + 1, threads=args.threads, raw_tokens_per_s=raw,
                           pipe_words_per_s=pipe, glue_cost=1 - pipe / raw, raw_tokens_per_cpu_s=raw_cpu,
                           pipe_words_per_cpu_s=pipe_cpu, glue_cost_cpu=1 - pipe_cpu / raw_cpu,
                           load=os.getloadavg()[0])
                results.append(row)
                print(json.dumps(row), flush=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
