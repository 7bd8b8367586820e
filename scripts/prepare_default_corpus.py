"""Tokenise the default English model's text once: Gutenberg books (headers/footers stripped, a few whole
books held out), the unlabelled text of the UD EWT and WNUT-17 TRAIN splits, optionally the SST train
sentences and TweetEval tweets (a random slice of tweets held out), and EWT dev for evaluation only.

Usage: python scripts/prepare_default_corpus.py DATA_DIR OUT_DIR [--n-process 2] [--in-domain-repeat 1]
           [--sst] [--tweets-repeat 0] [--heldout-tweets 2000]
Writes OUT_DIR/train/shard-*.txt, OUT_DIR/heldout-books/, OUT_DIR/ewt-dev/, OUT_DIR/heldout-tweets/ (with
--tweets-repeat) and OUT_DIR/stats.json.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import List, Tuple

from convert_sst import read_trees
from spacy_elmo.training.corpus import read_text, tokenize_files, write_shards

# Whole books kept out of training. A Christmas Carol turned out to be also inside three training files
# (a Dickens collection, another edition, a dramatisation), so the model card scores it separately.
HELDOUT_BOOKS = [
    "doyle__beyond-the-city.txt",
    "shelley__mathilda.txt",
    "burroughs__the-land-that-time-forgot.txt",
    "dickens__a-christmas-carol-in-prose-being-a-ghost-story-of-christmas.txt",
]


def conllu_texts(path: Path) -> List[str]:
    return [line[len("# text = "):] for line in read_text(path).splitlines() if line.startswith("# text = ")]


def conll_sentences(path: Path) -> List[str]:
    """WNUT-17: token<TAB>tag lines; blank lines (many hold a lone TAB) end sentences."""
    sentences, current = [], []
    for line in read_text(path).splitlines():
        token = line.split("\t")[0].strip()
        if token:
            current.append(token)
        elif current:
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


def split_tweets(data_dir: Path, n_heldout: int) -> Tuple[List[str], List[str]]:
    """TweetEval's tweets, deduplicated, with a random slice of `n_heldout` (seed 0) set aside."""
    tweets = sorted({line.strip() for path in sorted((data_dir / "tweeteval").glob("*_train_text.txt"))
                     for line in read_text(path).splitlines() if line.strip()})
    random.Random(0).shuffle(tweets)
    return tweets[n_heldout:], tweets[:n_heldout]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n-process", type=int, default=2)
    parser.add_argument("--n-shards", type=int, default=40)
    parser.add_argument("--in-domain-repeat", type=int, default=1,
                        help="copies of the EWT and WNUT-17 (and SST) train sentences (text the books lack)")
    parser.add_argument("--sst", action="store_true", help="add the SST train sentences to the in-domain text")
    parser.add_argument("--tweets-repeat", type=int, default=0, help="copies of the TweetEval tweets (0: none)")
    parser.add_argument("--heldout-tweets", type=int, default=2000, help="tweets set aside for evaluation")
    args = parser.parse_args()
    start = time.time()
    out: Path = args.out_dir
    sources = out / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    books = sorted((args.data_dir / "gutenberg-en" / "texts").glob("*.txt"))
    heldout = [b for b in books if b.name in HELDOUT_BOOKS]
    assert len(heldout) == len(HELDOUT_BOOKS), "a held-out book is missing"
    train_books = [b for b in books if b.name not in HELDOUT_BOOKS]
    (sources / "ewt-train.txt").write_text("\n".join(conllu_texts(args.data_dir / "ud-english-ewt" / "en_ewt-ud-train.conllu")) + "\n", encoding="utf8")
    (sources / "ewt-dev.txt").write_text("\n".join(conllu_texts(args.data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu")) + "\n", encoding="utf8")
    (sources / "wnut17-train.txt").write_text("\n".join(conll_sentences(args.data_dir / "wnut17" / "wnut17train.conll")) + "\n", encoding="utf8")

    books_lines = tokenize_files(train_books, "raw", "en", gutenberg=True, n_process=args.n_process)
    ewt_lines = tokenize_files([sources / "ewt-train.txt"], "lines", "en")
    wnut_lines = tokenize_files([sources / "wnut17-train.txt"], "tokens")
    sst_lines = {}
    if args.sst:
        (sources / "sst-train.txt").write_text("\n".join(" ".join(words) for words, _ in read_trees(args.data_dir / "sst" / "train.txt")) + "\n",
                                               encoding="utf8")
        sst_lines = tokenize_files([sources / "sst-train.txt"], "tokens")
    in_domain = [line for part in (ewt_lines, wnut_lines, sst_lines) for lines in part.values() for line in lines]
    train = [line for lines in books_lines.values() for line in lines] + in_domain * args.in_domain_repeat
    tweet_lines = heldout_tweet_lines = {}
    if args.tweets_repeat:
        tweets, heldout_tweets = split_tweets(args.data_dir, args.heldout_tweets)
        (sources / "tweets-train.txt").write_text("\n".join(tweets) + "\n", encoding="utf8")
        (sources / "tweets-heldout.txt").write_text("\n".join(heldout_tweets) + "\n", encoding="utf8")
        tweet_lines = tokenize_files([sources / "tweets-train.txt"], "lines", "en")
        train += [line for lines in tweet_lines.values() for line in lines] * args.tweets_repeat
        heldout_tweet_lines = tokenize_files([sources / "tweets-heldout.txt"], "lines", "en")
        (out / "heldout-tweets").mkdir(exist_ok=True)
        (out / "heldout-tweets" / "tweets-heldout.txt").write_text(
            "\n".join(next(iter(heldout_tweet_lines.values()))) + "\n", encoding="utf8")
    write_shards(train, out / "train", n_shards=args.n_shards, seed=0)
    heldout_lines = tokenize_files(heldout, "raw", "en", gutenberg=True, n_process=args.n_process)
    for path, lines in heldout_lines.items():
        (out / "heldout-books").mkdir(exist_ok=True)
        (out / "heldout-books" / Path(path).name).write_text("\n".join(lines) + "\n", encoding="utf8")
    dev_lines = tokenize_files([sources / "ewt-dev.txt"], "lines", "en")
    (out / "ewt-dev").mkdir(exist_ok=True)
    (out / "ewt-dev" / "en_ewt-ud-dev.txt").write_text("\n".join(next(iter(dev_lines.values()))) + "\n", encoding="utf8")

    def count(parts):
        return {Path(p).name: {"sentences": len(v), "tokens": sum(len(x.split()) for x in v)} for p, v in parts.items()}

    stats = {"train_books": count(books_lines), "ewt_train": count(ewt_lines), "wnut17_train": count(wnut_lines),
             "sst_train": count(sst_lines), "tweets_train": count(tweet_lines),
             "heldout_books": count(heldout_lines), "heldout_tweets": count(heldout_tweet_lines),
             "ewt_dev": count(dev_lines), "seconds": round(time.time() - start, 1)}
    stats["in_domain_repeat"] = args.in_domain_repeat
    stats["tweets_repeat"] = args.tweets_repeat
    repeats = {"train_books": 1, "ewt_train": args.in_domain_repeat, "wnut17_train": args.in_domain_repeat,
               "sst_train": args.in_domain_repeat, "tweets_train": args.tweets_repeat}
    stats["train_tokens"] = sum(v["tokens"] * repeat for k, repeat in repeats.items() for v in stats[k].values())
    stats["train_sentences"] = len(train)
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf8")
    print(json.dumps({k: stats[k] for k in ("train_tokens", "train_sentences", "seconds")}))


if __name__ == "__main__":
    main()
