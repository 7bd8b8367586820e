"""Static word vectors (floret) from the tokenised text the bundled biLM was trained on, for the fair baseline.

    python scripts/train_vectors.py runs/v3/train corpus/vectors/en.floret --threads 2

The shards hold one spaCy-tokenised sentence a line, so floret's whitespace split sees the biLM's tokens.
Settings are those of spaCy's floret demo pipelines (cbow, 300-d, char 4-5-grams, 2 hashes into 50,000
buckets). Writes the .floret table for `spacy init vectors --mode floret` and OUTPUT.json with the
settings, the input, the training time and the table's size.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SETTINGS = dict(model="cbow", mode="floret", dim=300, minn=4, maxn=5, hashCount=2, bucket=50_000, epoch=5,
                minCount=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", type=Path, help="a folder of tokenised text files")
    parser.add_argument("output", type=Path, help="the .floret file to write")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import floret

    files = sorted(p for p in args.shards.iterdir() if p.is_file())
    if not files:
        raise SystemExit(f"Error: {args.shards} holds no text files; run the corpus step first")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        tokens = 0
        with text.open("wb") as out:
            for path in files:
                data = path.read_bytes()
                out.write(data)
                tokens += len(data.decode("utf8").split())
        start = time.time()
        model = floret.train_unsupervised(str(text), thread=args.threads, verbose=0, **SETTINGS)
        seconds = time.time() - start
    partial = args.output.with_name(args.output.name + ".partial")
    model.save_floret_vectors(str(partial))
    partial.replace(args.output)
    record = {"settings": SETTINGS, "input": str(args.shards), "files": len(files), "tokens": tokens,
              "threads": args.threads, "train_seconds": round(seconds, 1), "bytes": args.output.stat().st_size,
              "words_in_vocab": len(model.words)}
    args.output.with_name(args.output.name + ".json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
