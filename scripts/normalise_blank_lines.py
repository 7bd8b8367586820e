"""Copy a CoNLL file, turning lines that hold only whitespace into empty lines.

WNUT-17's training file separates many sentences with a lone TAB, which `spacy convert -c ner`
does not read as a sentence break (it would see 1,000 sentences instead of 3,394).

    python scripts/normalise_blank_lines.py INPUT OUTPUT
"""
import re
import sys
from pathlib import Path

if __name__ == "__main__":
    source, target = map(Path, sys.argv[1:3])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(re.sub(r"(?m)^[ \t]+$", "", source.read_text(encoding="utf8")), encoding="utf8")
