"""What fp16, bf16 and int8 cost in accuracy: per-token cosine of their ELMo vectors to fp32's.

    python benchmarks/precision_accuracy.py [--sentences 0] [--original-sentences 500] [--out results.json]

Models: the bundled English model (trained weights) and random-weight biLMs of the three published
sizes (as in bench_bilm.py). Text: word forms of EWT dev (all sentences unless --sentences). For each
model and precision: the mean and minimum over tokens of the cosine between the token's vector and the
fp32 one, for the top layer and for the average of the layers, and the mean on every layer. Only
accuracy; speed is bench_bilm.py's.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Dict, List

import numpy as np
import torch

from bench_bilm import DATA, SIZES, random_bilm
from common import parse_args, read_conllu, token_cosines, write_json
from spacy_elmo.bilm.interface import ContextualBiLM
from spacy_elmo.bilm.precision import PRECISIONS, native_bf16
from spacy_elmo.bilm.weights import load_lstm_bilm
from spacy_elmo.embedder import Embedder
from spacy_elmo.hub import resolve_model_files

VIEWS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {"top": lambda a: a[-1], "average": lambda a: a.mean(0)}


def measure(name: str, bilm: ContextualBiLM, sentences: List[List[str]]) -> List[dict]:
    reference = list(Embedder(bilm).embed_sentences(sentences))
    rows = []
    for precision in PRECISIONS[1:]:
        start = time.perf_counter()
        lowered = list(Embedder(bilm, precision=precision).embed_sentences(sentences))
        row = dict(model=name, precision=precision, sentences=len(sentences), tokens=sum(map(len, sentences)),
                   seconds=round(time.perf_counter() - start, 1))
        for view, pick in VIEWS.items():
            cosines = token_cosines(reference, lowered, pick)
            row[f"{view}_mean"], row[f"{view}_min"] = float(cosines.mean()), float(cosines.min())
        row["layer_means"] = [float(token_cosines(reference, lowered, lambda a: a[k]).mean())
                              for k in range(reference[0].shape[0])]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=0, help="first N EWT dev sentences (0: all)")
    parser.add_argument("--original-sentences", type=int, default=500, help="fewer for the original size")
    parser.add_argument("--models", nargs="+", default=["bundled", *SIZES], choices=["bundled", *SIZES])
    args = parse_args(parser, threads=1)
    everything = read_conllu(DATA, args.sentences or 10 ** 9)
    print(f"torch {torch.__version__}, {args.threads} thread(s), bf16 kernels native on this CPU: "
          f"{native_bf16(torch.device('cpu'))}; EWT dev: {len(everything)} sentences", flush=True)
    rows = measure("bundled", load_lstm_bilm(*resolve_model_files()), everything) if "bundled" in args.models else []
    for size in (size for size in SIZES if size in args.models):
        n = args.original_sentences if size == "original" else len(everything)
        rows += measure(f"{size} (random weights)", random_bilm(size), everything[:n])
    print("| model | precision | sentences | tokens | top mean | top min | average mean | average min | mean per layer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['precision']} | {r['sentences']} | {r['tokens']} | {r['top_mean']:.5f} "
              f"| {r['top_min']:.5f} | {r['average_mean']:.5f} | {r['average_min']:.5f} "
              f"| {' / '.join(f'{c:.5f}' for c in r['layer_means'])} |")
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
