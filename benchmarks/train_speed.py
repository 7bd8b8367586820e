"""Training words/s per epoch of each ELMo config and its baseline, without evaluation pauses.

    python benchmarks/train_speed.py --epochs 3 --threads 1 --out benchmarks/results_train_speed.json

For each config: the pipeline is built from the shipped config, initialised on the training corpus,
then updated for --epochs epochs over the first --docs training Docs with spaCy's batcher from the
config; each epoch is timed alone (new Doc objects every epoch, as spaCy's corpus reader makes them).
Epoch 1 of an ELMo config runs the frozen biLM, later epochs read its training cache.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import spacy
import torch
from spacy.tokens import DocBin
from spacy.training import Example
from thinc.api import Config

from common import parse_args, write_json

ROOT = Path(__file__).resolve().parents[1]
CORPORA = {"ner": "corpus/wnut17/train.spacy", "tagger_parser": "corpus/ewt/en_ewt-ud-train.spacy"}


def measure(config_path: Path, corpus: Path, epochs: int, n_docs: int, seed: int) -> dict:
    config = Config().from_disk(config_path)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    reference = list(DocBin().from_disk(corpus).get_docs(nlp.vocab))[:n_docs]

    def examples():
        return [Example(nlp.make_doc(doc.text), doc) for doc in reference]

    nlp.initialize(examples)
    resolved = nlp.config.interpolate()["training"]
    batcher = spacy.util.registry.resolve({"b": resolved["batcher"]})["b"]
    optimizer = nlp.create_optimizer()
    random.seed(seed)
    results = []
    for epoch in range(epochs):
        batch_examples = examples()
        random.shuffle(batch_examples)
        words, start = 0, time.perf_counter()
        for batch in batcher(batch_examples):
            nlp.update(batch, sgd=optimizer, drop=resolved["dropout"])
            words += sum(len(eg.predicted) for eg in batch)
        seconds = time.perf_counter() - start
        results.append({"epoch": epoch + 1, "words": words, "seconds": round(seconds, 2),
                        "words_per_second": round(words / seconds, 1)})
        print(f"{config_path.name} epoch {epoch + 1}: {words / seconds:,.0f} words/s", flush=True)
    return {"config": str(config_path.relative_to(ROOT)), "docs": len(reference), "epochs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--docs", type=int, default=400, help="training Docs per epoch (the first ones of the corpus)")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_args(parser, threads=1)
    runs = []
    for task in args.tasks:
        for system in ("baseline", "elmo"):
            runs.append(measure(ROOT / "configs" / f"{system}_{task}.cfg", ROOT / CORPORA[task], args.epochs,
                                args.docs, args.seed))
    record = {"command": " ".join(sys.argv), "threads": args.threads, "torch": torch.__version__, "runs": runs}
    print(json.dumps(record, indent=2))
    write_json(args.out, record)


if __name__ == "__main__":
    main()
