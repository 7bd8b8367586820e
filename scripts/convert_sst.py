"""SST-5 (Stanford Sentiment Treebank, fine-grained PTB trees) to .spacy for a 5-class exclusive textcat.

    python scripts/convert_sst.py assets/sst/train.txt corpus/sst5/train.spacy

Sentence level, as in the ELMo paper: each tree becomes one Doc of its leaves, PTB escapes undone
(-LRB- -> "(", \\/ -> "/", `` and '' -> "), with cats {"0": 0/1, ..., "4": 0/1} set from the root's label.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import List, Tuple

LABELS = ("0", "1", "2", "3", "4")
PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}",
               "``": '"', "''": '"'}
_LEAF = re.compile(r"\((\d) ([^() ]+)\)")
"""A leaf: its label, then a token up to the bracket; a token may hold a no-break space (SST's "8\xa01\\/2")."""
_ROOT = re.compile(r"\s*\((\d)\s")


def unescape(token: str) -> str:
    token = PTB_ESCAPES.get(token, token)
    return token.replace("\\/", "/").replace("\\*", "*")


def parse_tree(line: str) -> Tuple[List[str], str]:
    """(leaf tokens, root label) of one tree; a line that is not a labelled tree is an error naming it."""
    root = _ROOT.match(line)
    leaves = _LEAF.findall(line)
    if root is None or not leaves or line.count("(") != line.count(")"):
        raise ValueError(f"not a labelled PTB tree: {line[:80]!r}")
    return [unescape(token) for _, token in leaves], root.group(1)


def read_trees(path: Path) -> List[Tuple[List[str], str]]:
    trees = []
    for number, line in enumerate(Path(path).read_text(encoding="utf8").splitlines(), 1):
        if line.strip():
            try:
                trees.append(parse_tree(line))
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: {err}") from None
    return trees


def trees_to_docs(trees: List[Tuple[List[str], str]], vocab) -> list:
    from spacy.tokens import Doc

    docs = []
    for words, label in trees:
        doc = Doc(vocab, words=words)
        doc.cats = {name: float(name == label) for name in LABELS}
        docs.append(doc)
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", type=Path, help="an SST PTB file: one tree a line")
    parser.add_argument("output", type=Path, help="the .spacy file to write")
    args = parser.parse_args()
    import spacy
    from spacy.tokens import DocBin

    try:
        trees = read_trees(args.trees)
    except (OSError, ValueError) as err:
        raise SystemExit(f"Error: {err}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    DocBin(docs=trees_to_docs(trees, spacy.blank("en").vocab)).to_disk(partial)
    partial.replace(args.output)
    print(f"{args.output}: {len(trees)} sentences")


if __name__ == "__main__":
    main()
