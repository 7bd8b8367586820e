"""Train and evaluate every (task, system, seed) of the ELMo-vs-baseline comparisons; resumable.

    python scripts/run_comparison.py --seeds 0 1 2 --jobs 2

Systems: `vectors` (spaCy features + static floret vectors) and `vectors_elmo` (the same plus ELMo) are the
headline pair; `baseline` and `elmo` the same pair without static vectors.

A run whose metrics file exists is skipped, so the same command picks up where a stopped one
ended. Per run it writes, under --metrics/TASK/:
  SYSTEM_seedN.json        `spacy evaluate --output` on the test set (written whole or not at all)
  SYSTEM_seedN.train.jsonl words trained on and seconds per evaluation (spacy-elmo.SpeedLogger.v1)
  SYSTEM_seedN.run.json    the command, threads, training and evaluation wall time
Both systems of a task get the same budget: --max-steps, --patience and --eval-frequency.
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
SYSTEMS = ("elmo", "baseline", "vectors", "vectors_elmo")


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
    name = f"{system}_seed{seed}"
    metrics_dir = Path(args.metrics) / task
    metrics = metrics_dir / f"{name}.json"
    if metrics.exists():
        return f"{task}/{name}: done before, skipped"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    output = Path(args.training) / task / name
    train = [sys.executable, "-m", "spacy", "train", f"configs/{system}_{paths['configs']}.cfg", "--output", str(output),
             "--gpu-id", str(args.gpu_id), "--paths.train", paths["train"], "--paths.dev", paths["dev"],
             "--paths.train_log", str(metrics_dir / f"{name}.train.jsonl"), "--system.seed", str(seed),
             "--training.max_steps", str(args.max_steps), "--training.patience", str(args.patience),
             "--training.eval_frequency", str(args.eval_frequency)]
    if system.startswith("vectors"):
        train += ["--paths.vectors", args.vectors]
    if system.endswith("elmo"):
        files_given = args.elmo_options != "null" or args.elmo_weights != "null"
        train += ["--paths.elmo_options", args.elmo_options, "--paths.elmo_weights", args.elmo_weights,
                  "--components.elmo.model.name", "null" if files_given else args.elmo_model,
                  "--components.elmo.model.train_cache_dtype", args.elmo_cache_dtype]
    partial = metrics.with_suffix(".json.partial")
    evaluate = [sys.executable, "-m", "spacy", "evaluate", str(output / "model-best"), paths["test"],
                "--output", str(partial), "--gpu-id", str(args.gpu_id)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    log = open(metrics_dir / f"{name}.log", "w", encoding="utf8")
    timings = {}
    for step, command in (("train", train), ("evaluate", evaluate)):
        start = time.time()
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        timings[f"{step}_seconds"] = round(time.time() - start, 1)
        if done.returncode:
            return f"{task}/{name}: {step} failed (exit {done.returncode}), see {log.name}"
    record = {"task": task, "system": system, "seed": seed, "threads": args.threads, "jobs": args.jobs,
              "train_command": " ".join(train), **timings}
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
    args = parser.parse_args(argv)
    runs = [(task, system, seed) for seed in args.seeds for task in args.tasks for system in args.systems]
    missing = missing_inputs(runs, args.vectors)
    if missing:
        sys.exit("\n".join(f"Error: {line}" for line in missing))
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda run: run_one(*run, args), runs):
            print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
