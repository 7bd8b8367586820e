"""bf16 mixed-precision pretraining against fp32 at equal training time: tokens/s and held-out perplexity.

    python benchmarks/pretrain_precision.py SHARDS --vocab VOCAB --heldout HELDOUT --minutes 20 \
        --out benchmarks/results_pretrain_precision.json

For each precision in turn (fp32 first, one after the other, never at the same time) the script runs
`python -m spacy_elmo pretrain SHARDS --precision P --max-minutes N` with the same seed, shards and
settings, in one process with --threads T (`--procs 1`, the default) or under torchrun with
`--procs` processes of T threads each; then `python -m spacy_elmo evaluate` on the held-out text
(full softmax, fp32 for both runs, with procs x threads threads). tokens/s counts tokens as the
trainer's log does (per direction, all processes together) over the training time the checkpoint
records (start-up and evaluation excluded). Extra `pretrain` options (size, optimizer) go in --pretrain-args.
The result JSON also records the machine: whether its CPU has bf16 instructions (without them torch
emulates bf16 and the bf16 run is much slower), its load before and after, and every command.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

from spacy_elmo.atomic import atomic_write_text
from spacy_elmo.bilm.precision import native_bf16
from spacy_elmo.training.checkpoint import load_checkpoint
from spacy_elmo.training.config import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]


def pretrain_command(args: argparse.Namespace, precision: str, run: Path) -> List[str]:
    launcher = [sys.executable, "-m", "spacy_elmo"]
    if args.procs > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                    str(args.procs), "-m", "spacy_elmo"]
    return [*launcher, "pretrain", *args.shards, "--vocab", args.vocab, "-o", str(run), "--overwrite",
            "--precision", precision, "--max-minutes", str(args.minutes), "--seed", str(args.seed),
            "--threads", str(args.threads), *shlex.split(args.pretrain_args)]


def run(command: List[str], threads: int) -> str:
    """The command's stdout; its stderr goes to ours (progress bar, warnings). A failure stops the script."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    print("$", shlex.join(command), flush=True)
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed with exit code {done.returncode}")
    return done.stdout


def measure(args: argparse.Namespace, precision: str) -> Dict[str, object]:
    run_dir = Path(args.work) / precision
    train = pretrain_command(args, precision, run_dir)
    run(train, args.threads)
    ckpt = load_checkpoint(run_dir)
    evaluate = [sys.executable, "-m", "spacy_elmo", "evaluate", str(run_dir), *args.heldout,
                "--batch-size", str(args.eval_batch_size), "--threads", str(args.procs * args.threads)]
    heldout = json.loads(run(evaluate, args.procs * args.threads).strip().splitlines()[-1])
    last = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    last = [r for r in last if "loss" in r][-1]
    return {"precision": precision, "steps": ckpt["step"], "tokens": ckpt["tokens"],
            "train_seconds": round(ckpt["elapsed"], 1), "tokens_per_s": round(ckpt["tokens"] / ckpt["elapsed"], 1),
            "last_train_loss": last["loss"], "heldout_ppl": heldout["ppl"], "heldout_fwd_ppl": heldout["fwd_ppl"],
            "heldout_bwd_ppl": heldout["bwd_ppl"], "heldout_tokens": heldout["tokens"],
            "commands": [shlex.join(train), shlex.join(evaluate)]}


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine() -> Dict[str, object]:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu": cpu_name(), "cpus": os.cpu_count(), "cpu_bf16_instructions": native_bf16(torch.device("cpu")),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", nargs="+", help="training shards (files, directories or globs)")
    parser.add_argument("--vocab", required=True)
    parser.add_argument("--heldout", nargs="+", required=True, help="held-out tokenised text")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time per precision")
    parser.add_argument("--procs", type=int, default=1, help="processes (>1: torchrun on this machine)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated, run in this order")
    parser.add_argument("--pretrain-args", default="", help="more `pretrain` options, e.g. '--optimizer adam "
                                                            "--learning-rate 0.002'")
    parser.add_argument("--work", default="runs/pretrain_precision", help="directory for the runs (replaced)")
    parser.add_argument("--out", required=True, help="result JSON")
    args = parser.parse_args()
    if args.minutes <= 0 or args.procs < 1 or args.threads < 1:
        parser.error("--minutes must be > 0, --procs and --threads >= 1")
    precisions = args.precisions.split(",")
    if not set(precisions) <= set(PRECISIONS):
        parser.error(f"--precisions: use values from {', '.join(PRECISIONS)}")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    result = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
              "load_before": os.getloadavg(), "minutes": args.minutes, "procs": args.procs, "threads": args.threads,
              "seed": args.seed, "pretrain_args": args.pretrain_args, "runs": []}
    for precision in precisions:
        result["runs"].append(measure(args, precision))
        print(json.dumps(result["runs"][-1]), flush=True)
    result["load_after"] = os.getloadavg()
    atomic_write_text(Path(args.out), json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
