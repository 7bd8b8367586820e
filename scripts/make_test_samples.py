"""Rebuild tests/data/samples/ from a full copy of the project's corpora (the layout `spacy project assets`
writes under assets/): the first sentences or trees of each file the tests read, byte for byte, and a few
whole public-domain books. No tweets: the WNUT-17 sample is taken from its dev file (YouTube comments).

Usage: python scripts/make_test_samples.py DATA_DIR [--out tests/data/samples]
"""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

# file (relative to DATA_DIR) -> how many leading sentences (blank-line blocks) or trees (lines) to keep
SENTENCES = {"ud-english-ewt/en_ewt-ud-train.conllu": 300, "ud-english-ewt/en_ewt-ud-dev.conllu": 150,
             "wnut17/emerging.dev.conll": 300}
TREES = {"sst/train.txt": 100, "sst/dev.txt": 30, "sst/test.txt": 30}
BOOKS = ["potter__the-tale-of-*.txt", "potter__the-tailor-of-gloucester.txt", "potter__the-story-of-*.txt"]   # 19 short books
LICENCES = ["ud-english-ewt/LICENSE.txt", "wnut17/LICENSE.txt", "wnut17/README.md", "sst/README.md",
            "gutenberg-en/LICENSE.txt"]
BLANK = re.compile(r"[ \t]*\n")   # WNUT-17's blank lines may hold a lone TAB


def leading_sentences(text: str, count: int) -> str:
    """The prefix of `text` that ends with its `count`-th blank-line-terminated block, unchanged."""
    lines, seen, inside = text.splitlines(keepends=True), 0, False
    for end, line in enumerate(lines, 1):
        if BLANK.fullmatch(line):
            if inside:
                seen, inside = seen + 1, False
                if seen == count:
                    return "".join(lines[:end])
        else:
            inside = True
    raise SystemExit(f"error: fewer than {count} sentences in the text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tests/data/samples"))
    args = parser.parse_args()
    jobs = [(name, lambda text, n=n: leading_sentences(text, n)) for name, n in SENTENCES.items()]
    jobs += [(name, lambda text, n=n: "".join(text.splitlines(keepends=True)[:n])) for name, n in TREES.items()]
    for name, cut in jobs:
        target = args.out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(cut((args.data_dir / name).read_bytes().decode("utf8")).encode("utf8"))
    texts = Path("gutenberg-en/texts")
    books = sorted(path for pattern in BOOKS for path in (args.data_dir / texts).glob(pattern))
    (args.out / texts).mkdir(parents=True, exist_ok=True)
    for book in books:
        shutil.copyfile(book, args.out / texts / book.name)
    for name in LICENCES:
        shutil.copyfile(args.data_dir / name, args.out / name)
    print(f"{len(jobs)} samples and {len(books)} books in {args.out}")


if __name__ == "__main__":
    main()
