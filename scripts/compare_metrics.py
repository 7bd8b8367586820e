"""Print ELMo against tok2vec baselines from the `spacy evaluate` JSON files of project.yml.

    python scripts/compare_metrics.py metrics
"""
import json
import sys
from pathlib import Path

SCORES = {"tagger_parser": ["tag_acc", "pos_acc", "morph_acc", "dep_uas", "dep_las", "speed"],
          "ner": ["ents_p", "ents_r", "ents_f", "speed"]}

if __name__ == "__main__":
    metrics = Path(sys.argv[1])
    for task, keys in SCORES.items():
        print(f"\n{task}\n{'pipeline':<10}" + "".join(f"{key:>11}" for key in keys))
        for encoder in ("tok2vec", "elmo"):
            path = metrics / f"{encoder}_{task}.json"
            if not path.exists():
                print(f"{encoder:<10}   (missing: {path})")
                continue
            scores = json.loads(path.read_text())
            print(f"{encoder:<10}" + "".join(f"{scores.get(key) or 0:>11.3f}" if key != "speed"
                                             else f"{scores.get(key) or 0:>11.0f}" for key in keys))
