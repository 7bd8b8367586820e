"""Test scores of trained ELMo pipelines with their biLM run in each precision (fp32, bf16, int8).

    python benchmarks/precision_downstream.py training/wnut17/elmo_seed*/model-best \
        --test corpus/wnut17/test.spacy --out benchmarks/results_precision_downstream.json

The pipelines are trained once (in fp32); only the `elmo` component's precision changes at evaluation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from common import parse_args, write_json

KEYS = ("ents_p", "ents_r", "ents_f", "pos_acc", "tag_acc", "morph_acc", "dep_uas", "dep_las")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--precisions", default="fp32,bf16,int8")
    args = parse_args(parser, threads=2)
    results = []
    for path in args.models:
        nlp = spacy.load(path)
        gold = list(DocBin().from_disk(args.test).get_docs(nlp.vocab))
        for precision in args.precisions.split(","):
            nlp.get_pipe("elmo").model.attrs["precision"] = precision
            examples = [Example(nlp.make_doc(doc.text), doc) for doc in gold]
            start = time.perf_counter()
            scores = nlp.evaluate(examples)
            row = {"model": str(path), "precision": precision, "seconds": round(time.perf_counter() - start, 1),
                   **{key: scores[key] for key in KEYS if scores.get(key) is not None}}
            print(json.dumps(row), flush=True)
            results.append(row)
    record = {"command": " ".join(sys.argv), "threads": args.threads, "results": results}
    write_json(args.out, record)


if __name__ == "__main__":
    main()
