"""The BiLSTM task-model study and the EWT budget study as one resumable queue of run_comparison runs.

    setsid nohup nice -n 15 python scripts/run_study.py > logs/study.log 2>&1 < /dev/null &

In order, one run at a time on 1 thread (a run whose metrics file exists is skipped, so the same
command resumes a stopped queue; a stopped run leaves only a .partial file and starts again):
  1. dev search on WNUT-17 and SST-5: each system of the BiLSTM pair (configs/vectors_bilstm_*.cfg,
     configs/vectors_elmo_bilstm_*.cfg) with each of SETTINGS, seed 0, a shorter budget, dev only;
     records in metrics/search/TASK/, the table in metrics/search.md (scripts/results_table.py)
  2. seeds, both systems seed by seed: each with its own best setting on dev (the same search budget for
     both), test scores in metrics/TASK/; 5 seeds on WNUT-17, 3 on SST-5 and 2 more if a standard
     deviation there is larger than half the difference of the means
  3. the EWT budget study: the headline pair (configs/vectors*_tagger_parser.cfg), seed 0, at 2x and
     then 4x the headline budget (variants budget2x, budget4x), dev curve in the .train.jsonl files
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List

from run_comparison import config_overrides, config_path, main as run

PAIR = ("vectors_bilstm", "vectors_elmo_bilstm")
COMPONENT = {"wnut17": "ner", "sst5": "textcat"}
BUDGET = {"wnut17": 3000, "sst5": 3000, "ewt": 2000}
"""The headline comparison's max steps per task (project.yml); patience 1600 throughout."""
SEARCH_STEPS = 1600
METRIC = {"wnut17": "ents_f", "sst5": "cats_micro_f"}


def settings(task: str) -> Dict[str, List[str]]:
    """The dev-search grid, the same for both systems: keys a system's config lacks (its ELMo dropouts,
    the ELMo concatenation's width) are left out of that system's runs."""
    tok2vec = f"components.{COMPONENT[task]}.model.tok2vec"
    width = [f"{tok2vec}.{key}=256" for key in ("width", "embed.width", "encode.width")]
    elmo = ("elmo", "elmo_output") if task == "sst5" else ("elmo",)
    dropout = ["training.dropout=0.3"] + [f"{tok2vec}.{key}.dropout=0.3" for key in elmo]
    return {"base": [], "wide": width, "drop3": dropout, "lr2": ["training.optimizer.learn_rate=0.002"]}


def search_records(task: str) -> List[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path("metrics/search", task).glob("*_seed*[0-9].json"))]


def chosen(task: str) -> Dict[str, str]:
    """Per system, the setting with the best dev score."""
    best: Dict[str, dict] = {}
    for record in search_records(task):
        if record["system"] not in best or record["dev_score"] > best[record["system"]]["dev_score"]:
            best[record["system"]] = record
    return {system: record["variant"] for system, record in best.items()}


def needs_more_seeds(task: str) -> bool:
    """Whether a standard deviation over seeds 0-2 is larger than half the difference of the means."""
    values = [[json.loads(path.read_text())[METRIC[task]]
               for path in sorted(Path("metrics", task).glob(f"{system}_seed[012].json"))] for system in PAIR]
    gain = abs(statistics.mean(values[1]) - statistics.mean(values[0]))
    return any(statistics.stdev(v) > gain / 2 for v in values)


def common(task: str, steps: int) -> List[str]:
    return ["--tasks", task, "--max-steps", str(steps), "--patience", "1600", "--jobs", "1", "--threads", "1"]


def seed_pairs(task: str, seeds) -> None:
    """Both systems seed by seed, so that a stopped queue leaves pairs; each with its own best dev setting."""
    picks = chosen(task)
    for seed in seeds:
        for system in PAIR:
            own = [value for value in settings(task)[picks[system]]
                   if config_overrides(config_path(task, system), [value])]
            sets = [arg for value in own for arg in ("--set", value)]
            run(common(task, BUDGET[task]) + ["--systems", system, "--seeds", str(seed), *sets])


def main() -> None:
    for task in ("wnut17", "sst5"):
        for name, overrides in settings(task).items():
            sets = [arg for value in overrides for arg in ("--set", value)]
            run(common(task, SEARCH_STEPS) + ["--systems", *PAIR, "--seeds", "0", "--variant", name, "--dev-only", *sets])
    Path("metrics/search/chosen.json").write_text(json.dumps({t: chosen(t) for t in COMPONENT}, indent=2) + "\n")
    for task, seeds in (("wnut17", range(5)), ("sst5", range(3))):
        seed_pairs(task, seeds)
    if needs_more_seeds("sst5"):
        seed_pairs("sst5", (3, 4))
    for factor in (2, 4):
        run(common("ewt", factor * BUDGET["ewt"]) + ["--systems", "vectors", "vectors_elmo", "--seeds", "0",
                                                      "--variant", f"budget{factor}x"])


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.exit(main())
