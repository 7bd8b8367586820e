"""Copy a CoNLL file, turning lines that hold only whitespace into empty lines.

WNUT-17's training file separates many sentences with a lone TAB, which `spacy convert -c ner`
does not read as a sentence break (it would see 1,000 sentences instead of 3,394).

    python scripts/normalise_blank_lines.py INPUT OUTPUT
"""
import argparse
import re
from pathlib import Path

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    args.target.parent.mkdir(parents=True, exist_ok=True)
    args.target.write_text(re.sub(r"(?m)^[ \t]+$", "", args.source.read_text(encoding="utf8")), encoding="utf8")
