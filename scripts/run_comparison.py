"""Train and evaluate every (task, system, seed) of the ELMo-vs-baseline comparisons; resumable.

    python scripts/run_comparison.py --seeds 0 1 2 --jobs 2

Systems: `vectors` (spaCy features + static floret vectors) and `vectors_elmo` (the same plus ELMo) are the
headline pair; `baseline` and `elmo` the same pair without static vectors; `vectors_bilstm` and
`vectors_elmo_bilstm` the headline pair with a BiLSTM task encoder (NER and textcat only).

A run whose metrics file exists is skipped, so the same command picks up where a stopped one
ended. Per run it writes, under --metrics/TASK/:
  SYSTEM_seedN.json        `spacy evaluate --output` on the test set (written whole or not at all)
  SYSTEM_seedN.train.jsonl words trained on and seconds per evaluation (spacy-elmo.SpeedLogger.v1)
  SYSTEM_seedN.run.json    the command, threads, training and evaluation wall time
  SYSTEM_seedN.test.jsonl  per test Doc, the counts of the paired bootstrap (NER, textcat; predict_test.py)
Both systems of a task get the same budget: --max-steps, --patience and --eval-frequency.
--variant names runs made with other settings (SYSTEM_VARIANT_seedN.*), --set KEY=VALUE overrides a config
value (keys the system's config lacks, such as an ELMo dropout in a baseline, are left out), and
--dev-only writes no test scores but SYSTEM_VARIANT_seedN.json under --metrics/search/TASK/: the best dev
score, its step and the training time (a dev search).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

TASKS: Dict[str, Dict[str, str]] = {
    "ewt": {"configs": "tagger_parser", "train": "corpus/ewt/en_ewt-ud-train.spacy",
            "dev": "corpus/ewt/en_ewt-ud-dev.spacy", "test": "corpus/ewt/en_ewt-ud-test.spacy",
            "made_by": "convert-ewt"},
    "wnut17": {"configs": "ner", "train": "corpus/wnut17/train.spacy", "dev": "corpus/wnut17/dev.spacy",
               "test": "corpus/wnut17/test.spacy", "made_by": "convert-wnut"},
    "sst5": {"configs": "textcat", "train": "corpus/sst5/train.spacy", "dev": "corpus/sst5/dev.spacy",
             "test": "corpus/sst5/test.spacy", "made_by": "convert-sst"},
}
"""Per task: the config suffix, the corpus files and the project.yml command that writes them."""
SYSTEMS = ("elmo", "baseline", "vectors", "vectors_elmo", "vectors_bilstm", "vectors_elmo_bilstm")


def config_path(task: str, system: str) -> Path:
    return Path("configs") / f"{system}_{TASKS[task]['configs']}.cfg"


def has_elmo(system: str) -> bool:
    return "elmo" in system.split("_")


def config_overrides(config: Path, settings: List[str]) -> List[str]:
    """`--KEY VALUE` arguments for the KEY=VALUE settings whose section and key the config has."""
    from thinc.api import Config

    cfg = Config().from_disk(config, interpolate=False)
    arguments = []
    for setting in settings:
        key, _, value = setting.partition("=")
        *sections, name = key.split(".")
        block = cfg
        for section in sections:
            block = block.get(section, {}) if isinstance(block, dict) else {}
        if isinstance(block, dict) and name in block:
            arguments += [f"--{key}", value]
    return arguments


def best_dev(train_log: Path) -> Dict[str, float]:
    """The best dev score of a run and its step, from its SpeedLogger records."""
    records = [json.loads(line) for line in train_log.read_text().splitlines() if line.strip()]
    best = max(records, key=lambda r: r["score"])
    return {"dev_score": best["score"], "best_step": best["step"], "steps": records[-1]["step"],
            "dev_other_scores": best["other_scores"]}


def missing_inputs(runs: List[Tuple[str, str, int]], vectors: str) -> List[str]:
    """One line per input file a run needs that is not there, with the command that makes it."""
    needed: Dict[str, str] = {}
    for task, system, _ in runs:
        needed.update({TASKS[task][split]: TASKS[task]["made_by"] for split in ("train", "dev", "test")})
        if system.startswith("vectors"):
            needed[vectors] = "vectors"
    return [f"{path} is missing: make it with `python -m spacy project run {command}`"
            for path, command in needed.items() if not Path(path).exists()]


def run_one(task: str, system: str, seed: int, args: argparse.Namespace) -> str:
    paths = TASKS[task]
    name = f"{system}_{args.variant}_seed{seed}" if args.variant else f"{system}_seed{seed}"
    metrics_dir = Path(args.metrics) / "search" / task if args.dev_only else Path(args.metrics) / task
    metrics = metrics_dir / f"{name}.json"
    if metrics.exists():
        return f"{task}/{name}: done before, skipped"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    output = Path(args.training) / ("search" if args.dev_only else "") / task / name
    train = [sys.executable, "-m", "spacy", "train", str(config_path(task, system)), "--output", str(output),
             "--gpu-id", str(args.gpu_id), "--paths.train", paths["train"], "--paths.dev", paths["dev"],
             "--paths.train_log", str(metrics_dir / f"{name}.train.jsonl"), "--system.seed", str(seed),
             "--training.max_steps", str(args.max_steps), "--training.patience", str(args.patience),
             "--training.eval_frequency", str(args.eval_frequency)]
    if system.startswith("vectors"):
        train += ["--paths.vectors", args.vectors]
    if has_elmo(system):
        files_given = args.elmo_options != "null" or args.elmo_weights != "null"
        train += ["--paths.elmo_options", args.elmo_options, "--paths.elmo_weights", args.elmo_weights,
                  "--components.elmo.model.name", "null" if files_given else args.elmo_model,
                  "--components.elmo.model.train_cache_dtype", args.elmo_cache_dtype]
    overrides = config_overrides(config_path(task, system), args.set)
    train += overrides
    partial = metrics.with_suffix(".json.partial")
    evaluate = [sys.executable, "-m", "spacy", "evaluate", str(output / "model-best"), paths["test"],
                "--output", str(partial), "--gpu-id", str(args.gpu_id)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    log = open(metrics_dir / f"{name}.log", "w", encoding="utf8")
    timings = {}
    predict = [sys.executable, str(Path(__file__).with_name("predict_test.py")), str(output / "model-best"), paths["test"],
               str(metrics_dir / f"{name}.test.jsonl")]
    steps = [("train", train)] if args.dev_only else [("train", train), ("evaluate", evaluate)]
    if not args.dev_only and paths["configs"] in ("ner", "textcat"):
        steps.append(("predict", predict))
    for step, command in steps:
        start = time.time()
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        timings[f"{step}_seconds"] = round(time.time() - start, 1)
        if done.returncode:
            return f"{task}/{name}: {step} failed (exit {done.returncode}), see {log.name}"
    record = {"task": task, "system": system, "variant": args.variant, "overrides": overrides, "seed": seed,
              "threads": args.threads, "jobs": args.jobs, "train_command": " ".join(train), **timings}
    if args.dev_only:
        partial.write_text(json.dumps({**record, **best_dev(metrics_dir / f"{name}.train.jsonl")}, indent=2) + "\n")
    else:
        (metrics_dir / f"{name}.run.json").write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(metrics)
    return f"{task}/{name}: trained in {timings['train_seconds']:.0f} s"


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--systems", nargs="+", default=["vectors", "vectors_elmo"], choices=list(SYSTEMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--patience", type=int, default=1600)
    parser.add_argument("--eval-frequency", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per run")
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--elmo-model", default="default", help="a catalogue name (ignored when files are given)")
    parser.add_argument("--elmo-options", default="null")
    parser.add_argument("--elmo-weights", default="null")
    parser.add_argument("--elmo-cache-dtype", default="float32", choices=["float32", "float16"],
                        help="how the frozen biLM's training cache stores its layers")
    parser.add_argument("--vectors", default="corpus/vectors/en_floret", help="static vectors of the vectors systems")
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--training", default="training")
    parser.add_argument("--variant", default="",
                        help="a name for runs of another setting or budget (kept apart from the plain runs)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, e.g. training.dropout=0.3 (repeatable)")
    parser.add_argument("--dev-only", action="store_true", help="a dev-search run: no test evaluation")
    args = parser.parse_args(argv)
    runs = [(task, system, seed) for seed in args.seeds for task in args.tasks for system in args.systems]
    missing = missing_inputs(runs, args.vectors)
    configs = {config_path(task, system) for task, system, _ in runs}
    missing += [f"--set {setting}: no config of these runs has that key ({', '.join(map(str, sorted(configs)))})"
                for setting in args.set if not any(config_overrides(config, [setting]) for config in configs)]
    if missing:
        sys.exit("\n".join(f"Error: {line}" for line in missing))
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda run: run_one(*run, args), runs):
            print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
