"""Per-Doc test-set counts of a trained NER or textcat pipeline, for the paired bootstrap of scripts/results_table.py.

    python scripts/predict_test.py training/wnut17/vectors_seed0/model-best corpus/wnut17/test.spacy out.jsonl

One JSON line per test Doc, in corpus order: {"tp", "pred", "gold"} (exact entity spans) for a pipeline with
`ner`, {"correct"} (1 if the top predicted category is the gold one) for one with `textcat`. Summed over all
Docs these give the entity P/R/F and accuracy that `spacy evaluate` reports; the output is written whole
or not at all.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict

import spacy
from spacy.tokens import Doc, DocBin


def counts(gold: Doc, predicted: Doc) -> Dict[str, int]:
    if gold.has_annotation("ENT_IOB"):
        spans = [{(e.start, e.end, e.label_) for e in doc.ents} for doc in (gold, predicted)]
        return {"tp": len(spans[0] & spans[1]), "pred": len(spans[1]), "gold": len(spans[0])}
    return {"correct": int(max(predicted.cats, key=predicted.cats.get) == max(gold.cats, key=gold.cats.get))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("test", type=Path, help="the gold .spacy corpus")
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    nlp = spacy.load(args.model)
    gold = list(DocBin().from_disk(args.test).get_docs(nlp.vocab))
    inputs = [Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in gold]
    lines = [json.dumps(counts(g, p)) for g, p in zip(gold, nlp.pipe(inputs, batch_size=64))]
    partial = args.output.with_name(args.output.name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(args.output)


if __name__ == "__main__":
    main()
